"""Text range-coded under a small causal LM that sender and receiver share (coding `lm`): each token costs
-log2 p(token | the tokens before it) bits, so a predictable text costs a few bits a token; the price is the
receiver's time, since decoding runs the LM one token at a time.

Sender and receiver compute the probabilities with the same step (`LMCoder._step`: one token in, the next
token's distribution out, batch 1, KV cache), so both see the same numbers on the same machine and build
identical coder models; the round trip is exact or `decode` raises CodingError. Message layout: a 2-byte
token count, then the range coder's 32-bit words (constriction). `encode_prefixes` / `decode_together` code
several messages that share their start (a context, and the context + the question) in one LM pass.
"""
from __future__ import annotations

import struct
import time

import numpy as np
import torch

from latentwire.errors import CodingError
from latentwire.llm.cache import cache_kwarg, output_cache
from latentwire.llm.loader import Receiver
from latentwire.wire.codings import MAX_TOKENS, Coding


TOKENS_PER_BYTE = 64
"""The most tokens a message may claim per payload byte (1/8 bit a token; natural text costs 3-6 bits): a
malformed count is refused at once instead of running the LM for up to 65535 steps."""


class LMCoder:
    """Range coding of text under `receiver`'s next-token probabilities (its tokenizer segments the text)."""

    def __init__(self, receiver: Receiver):
        self.receiver = receiver
        tokenizer = receiver.tokenizer
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if start is None:
            raise CodingError(f"{receiver.name}: lm coding needs a BOS or EOS token to start from")
        self.start = int(start)

    def tokens(self, text: str) -> list[int]:
        """The LM's token ids [T] of `text` (CodingError unless they decode back to `text` exactly)."""
        ids = self.receiver.tokenizer(text, add_special_tokens=False)["input_ids"]
        if self.text(ids) != text:
            raise CodingError(f"lm: {self.receiver.name}'s tokenizer does not give this text back exactly")
        if len(ids) > MAX_TOKENS:
            raise CodingError(f"lm: {len(ids)} tokens, at most {MAX_TOKENS} fit a message")
        return ids

    def text(self, ids: list[int]) -> str:
        """The text of token ids [T]."""
        return self.receiver.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    @torch.no_grad()
    def _step(self, token: int, cache):
        """(the next token's probabilities [vocab] as float32, the cache) after reading `token`."""
        model = self.receiver.model
        out = model(input_ids=torch.tensor([[token]], device=self.receiver.device), **cache_kwarg(model, cache),
                    use_cache=True)
        # float32 before the softmax: bfloat16 probabilities would waste bits; the coder normalises them itself
        probabilities = torch.softmax(out.logits[0, -1].float(), dim=-1).cpu().numpy()
        return probabilities, output_cache(out)

    def encode(self, text: str) -> bytes:
        """`text` as an lm-coded message."""
        return self.encode_prefixes([text])[0][0]

    def decode(self, data: bytes) -> str:
        """The text of an lm-coded message (CodingError on malformed bytes)."""
        return self.decode_together([data])[0][0]

    def encode_prefixes(self, parts: list[str]) -> list[tuple[bytes, float]]:
        """(message, seconds until it was coded) [k], message k coding parts[0] + ... + parts[k] (each part
        tokenised on its own), from one pass of the LM over all parts: message k is what a sender of the
        first k + 1 parts alone would send."""
        import constriction

        pieces = [self.tokens(part) for part in parts]
        encoders = [constriction.stream.queue.RangeEncoder() for _ in parts]
        messages, cache, previous, done = [], None, self.start, 0
        started = time.perf_counter()
        for k, piece in enumerate(pieces):
            for token in piece:
                probabilities, cache = self._step(previous, cache)
                model = constriction.stream.model.Categorical(probabilities, perfect=False)
                for encoder in encoders[k:]:
                    encoder.encode(token, model)
                previous = token
            done += len(piece)
            if done > MAX_TOKENS:
                raise CodingError(f"lm: {done} tokens, at most {MAX_TOKENS} fit a message")
            data = struct.pack("<H", done) + encoders[k].get_compressed().astype("<u4").tobytes()
            messages.append((data, time.perf_counter() - started))
        return messages

    def decode_together(self, messages: list[bytes]) -> list[tuple[str, float]]:
        """(text, seconds until it was decoded) of each message, decoded in one pass of the LM: every message
        must code a prefix of the longest one's tokens (as encode_prefixes writes them; CodingError if not)."""
        import constriction

        counts = [self._count(data) for data in messages]
        decoders = [constriction.stream.queue.RangeDecoder(np.frombuffer(d[2:], dtype="<u4").astype(np.uint32))
                    for d in messages]
        ids, cache, previous, finished = [], None, self.start, {}
        started = time.perf_counter()
        try:
            for step in range(max(counts, default=0)):
                finished.update({k: time.perf_counter() - started for k, c in enumerate(counts) if c == step})
                probabilities, cache = self._step(previous, cache)
                model = constriction.stream.model.Categorical(probabilities, perfect=False)
                symbols = {int(d.decode(model)) for d, c in zip(decoders, counts) if c > step}
                if len(symbols) != 1:
                    raise CodingError("lm: the messages decoded together do not share their tokens")
                previous = symbols.pop()
                ids.append(previous)
        except (ValueError, RuntimeError, AssertionError) as error:
            raise CodingError(f"lm: the range coder refused the bytes ({error})") from None
        finished.update({k: time.perf_counter() - started for k in range(len(counts)) if k not in finished})
        return [(self.text(ids[:c]), finished[k]) for k, c in enumerate(counts)]

    @staticmethod
    def _count(data: bytes) -> int:
        """The token count of one message, checked against its size."""
        if len(data) < 2 or (len(data) - 2) % 4:
            raise CodingError(f"lm: {len(data)} bytes is not a 2-byte count and whole 32-bit words")
        count = struct.unpack("<H", data[:2])[0]
        if count > TOKENS_PER_BYTE * (len(data) - 2):
            raise CodingError(f"lm: {count} tokens claimed in {len(data) - 2} payload bytes (at most "
                              f"{TOKENS_PER_BYTE} a byte)")
        return count

    def coding(self) -> Coding:
        """This coder as a named Coding."""
        return Coding("lm", self.encode, self.decode)
