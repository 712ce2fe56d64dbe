"""The shared vocabulary: the token strings that every receiver's vocabulary has, numbered 0..n-1 in sorted
order, so that a sender and every receiver derive the same numbering from their tokenizers alone.

The default receivers are byte-level BPE models (GPT-2's byte-to-character map), so every single byte is a
shared string and any text can be written exactly in shared tokens: the sender tokenises with its own
tokenizer and splits a token that not every vocabulary has into the longest shared pieces. The wire codings
(`latentwire.wire.codings`) and the token-carrying latents number tokens this way.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import TYPE_CHECKING

from latentwire.errors import CodingError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


TEXT_BYTES = tuple(b for b in range(256) if (b >= 0x20 or b in (0x09, 0x0A, 0x0D)) and b not in (0xC0, 0xC1)
                   and b < 0xF1)
"""The byte values that a shared vocabulary must hold as single tokens: every byte of valid UTF-8 text up to
U+3FFFF (emoji included), but the control characters other than tab, newline and carriage return (SmolLM2's
vocabulary lacks some of those, and the lead bytes 0xF1/0xF2 of planes 4-16, which hold no assigned text)."""


@lru_cache(maxsize=1)
def byte_characters() -> tuple[str, ...]:
    """GPT-2's byte-level alphabet: the character that stands for each byte value 0..255 in a vocabulary."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + extra)
            extra += 1
    return tuple(table[b] for b in range(256))


def to_byte_string(text: str) -> str:
    """`text` as a byte-level vocabulary writes it: each UTF-8 byte as its alphabet character."""
    alphabet = byte_characters()
    return "".join(alphabet[b] for b in text.encode("utf-8"))


def from_byte_string(characters: str) -> str:
    """The text whose byte-level writing is `characters` (CodingError if it is not valid UTF-8)."""
    index = {c: b for b, c in enumerate(byte_characters())}
    try:
        return bytes(index[c] for c in characters).decode("utf-8")
    except (KeyError, UnicodeDecodeError) as error:
        raise CodingError(f"shared tokens do not spell UTF-8 text ({type(error).__name__})") from None


class SharedVocabulary:
    """Sorted shared token strings (ids 0..n-1) and the sender's tokenizer that segments text into them."""

    def __init__(self, strings: list[str], sender: PreTrainedTokenizerBase):
        have = set(strings)
        missing = [b for b in TEXT_BYTES if byte_characters()[b] not in have]
        if missing:
            raise CodingError(f"the shared vocabulary lacks {len(missing)} of the byte tokens UTF-8 text is made of "
                              f"(first: 0x{missing[0]:02x}): the receivers must all be byte-level BPE models")
        self.strings, self.sender = list(strings), sender
        self.ids = {s: i for i, s in enumerate(self.strings)}
        self.longest = max(map(len, self.strings))
        self.fingerprint = hashlib.sha256("\n".join(self.strings).encode("utf-8")).hexdigest()

    @classmethod
    def from_tokenizers(cls, sender: PreTrainedTokenizerBase,
                        tokenizers: list[PreTrainedTokenizerBase]) -> SharedVocabulary:
        """The strings that the sender and every tokenizer in `tokenizers` have, special tokens left out."""
        everyone = [sender, *tokenizers]
        special = {t for tok in everyone for t in tok.all_special_tokens} | \
            {t for tok in everyone for t in tok.get_added_vocab()}
        shared = set(sender.get_vocab())
        for tokenizer in tokenizers:
            shared &= set(tokenizer.get_vocab())
        return cls(sorted(shared - special), sender)

    def __len__(self) -> int:
        return len(self.strings)

    def split(self, piece: str) -> list[int]:
        """Shared ids spelling `piece` (a byte-level string): greedy longest shared prefixes."""
        ids, start = [], 0
        while start < len(piece):
            for end in range(min(len(piece), start + self.longest), start, -1):
                if piece[start:end] in self.ids:
                    ids.append(self.ids[piece[start:end]])
                    start = end
                    break
        return ids

    def encode(self, text: str) -> list[int]:
        """Shared ids [T] that spell `text` exactly: the sender's tokens, unshared ones split into pieces."""
        written = to_byte_string(text)
        if any(c not in self.ids for c in written):
            byte = next(b for b, c in enumerate(byte_characters()) if c in written and c not in self.ids)
            raise CodingError(f"text has the byte 0x{byte:02x}, which not every receiver's vocabulary has")
        tokens = self.sender.convert_ids_to_tokens(self.sender(text, add_special_tokens=False)["input_ids"])
        if "".join(tokens) != written:     # a normalising tokenizer: segment the text itself
            return self.split(written)
        return [i for token in tokens for i in ([self.ids[token]] if token in self.ids else self.split(token))]

    def receiver_ids(self, tokenizer: PreTrainedTokenizerBase) -> list[int]:
        """[n]: each shared string's id in `tokenizer`'s vocabulary (every receiver has every shared string)."""
        vocabulary = tokenizer.get_vocab()
        missing = [s for s in self.strings if s not in vocabulary]
        if missing:
            raise CodingError(f"tokenizer lacks {len(missing)} shared strings (first: {missing[0]!r}): not a "
                              "vocabulary this shared vocabulary was made from")
        return [vocabulary[s] for s in self.strings]

    def decode(self, ids: list[int]) -> str:
        """The text that shared ids [T] spell (CodingError on an id out of range)."""
        if any(not 0 <= i < len(self.strings) for i in ids):
            raise CodingError(f"shared token id out of range 0..{len(self.strings) - 1}")
        return from_byte_string("".join(self.strings[i] for i in ids))
