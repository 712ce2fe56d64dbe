"""Lossless codings of a text message on the wire: how many bytes the same text costs, and how long it takes
to decode. Each coding is exact (decode(encode(text)) == text, or CodingError).

    utf8     the text's UTF-8 bytes
    zstd     zstd level 19 of them
    ids      shared-vocabulary ids (latentwire.wire.shared_vocab) at ceil(log2 n) bits each, after a 2-byte count
    unigram  the same ids range-coded (constriction) under the shipped unigram table, after a 2-byte count
    bigram   the same ids range-coded given the previous one (latentwire.wire.bigram: the shipped order-1
             table, escaping to the unigram table), after a 2-byte count
    lm       the sender's tokens range-coded under a small LM's next-token probabilities (latentwire.wire.lm_coding)

`text_codings(vocabulary, table, bigram)` builds the cheap ones (those its arguments allow); CODING_NAMES lists
all six in column order.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Callable

import numpy as np
import zstandard

from latentwire.errors import CodingError
from latentwire.wire.bigram import BigramCoder, BigramTable, tokens_per_byte_bound
from latentwire.wire.shared_vocab import SharedVocabulary
from latentwire.wire.unigram import UnigramTable

CODING_NAMES = ("utf8", "zstd", "ids", "unigram", "bigram", "lm")
MAX_TOKENS = 65535            # the 2-byte count


@dataclass(frozen=True)
class Coding:
    """A named lossless coding: encode(text) -> bytes, decode(bytes) -> text."""

    name: str
    encode: Callable[[str], bytes]
    decode: Callable[[bytes], str]


def _utf8_decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CodingError("utf8: bytes are not valid UTF-8") from None


def _zstd_decode(data: bytes) -> str:
    try:
        return _utf8_decode(zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 24))
    except zstandard.ZstdError as error:
        raise CodingError(f"zstd: {error}") from None


def _count(ids: list[int], name: str) -> bytes:
    if len(ids) > MAX_TOKENS:
        raise CodingError(f"{name}: {len(ids)} tokens, at most {MAX_TOKENS} fit a message")
    return struct.pack("<H", len(ids))


def _read_count(data: bytes, name: str) -> tuple[int, bytes]:
    if len(data) < 2:
        raise CodingError(f"{name}: {len(data)} bytes, shorter than the 2-byte token count")
    return struct.unpack("<H", data[:2])[0], data[2:]


def _spelled(vocabulary: SharedVocabulary, ids: list[int], name: str) -> str:
    """The text shared ids spell (CodingError naming the coding when they spell none)."""
    try:
        return vocabulary.decode(ids)
    except CodingError as error:
        raise CodingError(f"{name}: {error}") from None


def _check_density(count: int, body: bytes, per_byte: int, name: str) -> None:
    """CodingError when `count` tokens cannot fit `body` at the coder's densest (`per_byte` tokens a byte)."""
    if count > per_byte * max(len(body), 4):
        raise CodingError(f"{name}: {count} tokens claimed in {len(body)} payload bytes (at most {per_byte} a byte)")


def pack_ids(ids: list[int], n: int) -> bytes:
    """Ids [T] < n as a 2-byte count then ceil(log2 n) bits each, LSB first, padded to a byte."""
    width = max(1, math.ceil(math.log2(n)))
    bits = np.array([(i >> k) & 1 for i in ids for k in range(width)], dtype=np.uint8)
    return _count(ids, "ids") + np.packbits(bits, bitorder="little").tobytes()


def unpack_ids(data: bytes, n: int) -> list[int]:
    """The ids that `pack_ids(ids, n)` wrote (CodingError on a short or inconsistent message)."""
    count, body = _read_count(data, "ids")
    width = max(1, math.ceil(math.log2(n)))
    if len(body) != math.ceil(count * width / 8):
        raise CodingError(f"ids: {len(body)} payload bytes for {count} tokens of {width} bits")
    bits = np.unpackbits(np.frombuffer(body, dtype=np.uint8), bitorder="little")[: count * width]
    ids = (bits.reshape(count, width).astype(np.int64) << np.arange(width)).sum(1).tolist() if count else []
    if any(i >= n for i in ids):
        raise CodingError(f"ids: a token id is out of range 0..{n - 1}")
    return ids


def range_encode(ids: list[int], model) -> bytes:
    """Ids [T] range-coded under a constriction model (one for all, i.i.d.): the compressed words as bytes."""
    import constriction

    encoder = constriction.stream.queue.RangeEncoder()
    if ids:
        encoder.encode(np.asarray(ids, dtype=np.int32), model)
    return encoder.get_compressed().astype("<u4").tobytes()


def range_decode(data: bytes, count: int, model, name: str) -> list[int]:
    """`count` ids range-decoded from `data` under a constriction model (CodingError on malformed bytes)."""
    import constriction

    if len(data) % 4:
        raise CodingError(f"{name}: {len(data)} payload bytes, not whole 32-bit words")
    try:
        decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
        return decoder.decode(model, count).tolist() if count else []
    except (ValueError, RuntimeError, AssertionError) as error:
        raise CodingError(f"{name}: the range coder refused the bytes ({error})") from None


def text_codings(vocabulary: SharedVocabulary | None, table: UnigramTable | None,
                 bigram: BigramTable | None = None) -> dict[str, Coding]:
    """utf8 and zstd; ids where a shared vocabulary is given; unigram where its unigram table is given too;
    bigram where an order-1 table of the same vocabulary is given as well."""
    compressor = zstandard.ZstdCompressor(level=19)
    codings = {
        "utf8": Coding("utf8", lambda text: text.encode("utf-8"), _utf8_decode),
        "zstd": Coding("zstd", lambda text: compressor.compress(text.encode("utf-8")), _zstd_decode),
    }
    if vocabulary is None:
        return codings
    n = len(vocabulary)
    codings["ids"] = Coding("ids", lambda text: pack_ids(vocabulary.encode(text), n),
                            lambda data: vocabulary.decode(unpack_ids(data, n)))
    if table is None:
        return codings
    if table.fingerprint != vocabulary.fingerprint:
        raise CodingError("the unigram table was fitted on another shared vocabulary (fingerprints differ)")
    model = table.model()
    unigram_limit = tokens_per_byte_bound(float(table.probabilities().max()))

    def unigram_encode(text: str) -> bytes:
        ids = vocabulary.encode(text)
        return _count(ids, "unigram") + range_encode(ids, model)

    def unigram_decode(data: bytes) -> str:
        count, body = _read_count(data, "unigram")
        _check_density(count, body, unigram_limit, "unigram")
        return _spelled(vocabulary, range_decode(body, count, model, "unigram"), "unigram")

    codings["unigram"] = Coding("unigram", unigram_encode, unigram_decode)
    if bigram is None:
        return codings
    if bigram.fingerprint != vocabulary.fingerprint:
        raise CodingError("the bigram table was fitted on another shared vocabulary (fingerprints differ)")
    coder = BigramCoder(bigram, model, float(table.probabilities().max()))

    def bigram_encode(text: str) -> bytes:
        ids = vocabulary.encode(text)
        return _count(ids, "bigram") + coder.encode([ids])

    def bigram_decode(data: bytes) -> str:
        count, body = _read_count(data, "bigram")
        _check_density(count, body, coder.tokens_per_byte, "bigram")
        return _spelled(vocabulary, coder.decode(body, [count], "bigram"), "bigram")

    codings["bigram"] = Coding("bigram", bigram_encode, bigram_decode)
    return codings
