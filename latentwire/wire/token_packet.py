"""Packet version 2: a context (and optionally the question) carried exactly, as shared-vocabulary token
indices range-coded under tables that sender and receivers share (the unigram table that ships in the
package, and optionally the order-1 table beside it; the coder id says which). Whatever reads it (k tokens a position, two resolutions) is the receiver's choice: the packet does
not depend on the reader.

Layout (little-endian, no padding)::

    offset  size  field
    0       2     magic b"LW"   (a version 1 packet starts b"LWIR": byte 2 tells them apart)
    2       1     version (u8, = 2)
    3       1     flags (bit 0: the question follows the context; bit 1: framed, the context's ids start
                  with those of FRAMING, the prompt's "Context:", which are not sent; the other bits are 0)
    4       4     coder id: what a receiver needs to decode (shared vocabulary + coding table), not a weights id
    8       1-3   context tokens T (unsigned LEB128 varint)
    ..      1-3   question tokens Q (varint; only with flag bit 0)
    ..      4*w   payload: the T (+ Q) ids range-coded (constriction), w 32-bit words
    end-4   4     CRC32 (zlib.crc32) of every byte before it

A framed context is coded from the framing's last id, as if it had been sent: the receiver puts the framing
back before it reads, so the reader sees the same ids either way. Header + CRC: 14 bytes for a context of 128..16383 tokens alone, 15 with a question under 128 tokens.
The CRC catches corruption; it is not authentication (latentwire/wire/auth.py). Every malformed input gets a
one-line PacketError; sizes are checked against len(data) before anything is decoded.
"""
from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass

from latentwire.errors import CodingError, PacketError
from latentwire.wire.bigram import START, BigramCoder, BigramTable, tokens_per_byte_bound
from latentwire.wire.codings import range_decode, range_encode
from latentwire.wire.shared_vocab import SharedVocabulary
from latentwire.wire.unigram import UnigramTable

MAGIC = b"LW"
VERSION = 2
FLAG_QUESTION = 1
FLAG_FRAMED = 2
FRAMING = "Context:"
"""The prompt's framing of a context (latentwire.prompt.split_content): known to every receiver, so a framed
packet leaves its ids out (5 bytes of a 224-byte mean validation packet)."""
CODER_ID_SIZE = 4
CRC_SIZE = 4
MAX_TOKENS = 1 << 16
"""Most tokens one packet holds (context and question together)."""


def coder_id(vocabulary: SharedVocabulary, table: UnigramTable, bigram: BigramTable | None = None) -> bytes:
    """4 bytes naming the shared vocabulary and the coding tables (sha256 of them all)."""
    if table.fingerprint != vocabulary.fingerprint or (bigram is not None and bigram.fingerprint != table.fingerprint):
        raise CodingError("the unigram or bigram table was fitted on another shared vocabulary (fingerprints differ)")
    digest = hashlib.sha256(vocabulary.fingerprint.encode())
    digest.update(struct.pack(f"<{len(table.counts)}Q", *table.counts))
    if bigram is not None:
        digest.update(b"bigram" + bigram.digest())
    return digest.digest()[:CODER_ID_SIZE]


def write_varint(value: int) -> bytes:
    """Unsigned LEB128 of 0 <= value < 2**21 (at most 3 bytes)."""
    if not 0 <= value < 1 << 21:
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def read_varint(data: bytes, offset: int, what: str) -> tuple[int, int]:
    """(value, next offset) of the varint at `offset`; PacketError if it runs past the data or 3 bytes."""
    value = 0
    for shift in (0, 7, 14):
        if offset >= len(data):
            raise PacketError(f"packet truncated inside the {what} count")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and shift:
                raise PacketError(f"packet's {what} count is not minimally encoded")
            return value, offset
    raise PacketError(f"packet's {what} count is longer than 3 bytes")


@dataclass(frozen=True)
class TokenPacket:
    """What a version 2 packet carries: the context's shared ids [T], the question's [Q] (None if absent), and
    the exact texts they spell."""

    coder_id: bytes
    context_ids: list[int]
    question_ids: list[int] | None
    context: str
    question: str | None


class TokenWire:
    """Sender and receiver side of version 2 packets under one shared vocabulary and unigram table, and an
    order-1 table on top of it where one is given (each token coded given the one before)."""

    def __init__(self, vocabulary: SharedVocabulary, table: UnigramTable, bigram: BigramTable | None = None):
        self.vocabulary, self.table, self.bigram = vocabulary, table, bigram
        self.id = coder_id(vocabulary, table, bigram)
        self._model = table.model()
        self.framing_ids = vocabulary.encode(FRAMING)
        likeliest = float(table.probabilities().max())
        self._bigram = BigramCoder(bigram, self._model, likeliest) if bigram is not None else None
        self.tokens_per_word = 4 * (self._bigram.tokens_per_byte if self._bigram else tokens_per_byte_bound(likeliest))
        """The most tokens an honest 32-bit payload word holds under these tables (more is refused undecoded)."""

    @classmethod
    def for_tokenizers(cls, sender, tokenizers: list, table: UnigramTable | None = None,
                       bigram: BigramTable | None = None) -> TokenWire:
        """The wire of the vocabulary that `sender` and `tokenizers` share, under `table` (default: shipped)
        and `bigram` (default: none)."""
        return cls(SharedVocabulary.from_tokenizers(sender, tokenizers), table or UnigramTable.load(), bigram)

    def _code(self, segments: list[list[int]], framed: bool = False) -> bytes:
        """Segments of ids -> payload words (order-1 where a bigram table is given, else unigram i.i.d.; a
        framed context's first id coded after the framing's last)."""
        if self._bigram is not None:
            return self._bigram.encode(segments, self._starts(len(segments), framed))
        return range_encode([i for segment in segments for i in segment], self._model)

    def _uncode(self, payload: bytes, counts: list[int], name: str, framed: bool = False) -> list[int]:
        """The ids of `counts` segments from payload words (CodingError on malformed bytes)."""
        if self._bigram is not None:
            return self._bigram.decode(payload, counts, name, self._starts(len(counts), framed))
        return range_decode(payload, sum(counts), self._model, name)

    def _starts(self, segments: int, framed: bool) -> list[int]:
        """The id each segment is coded after (START, or the framing's last id for a framed context)."""
        return [self.framing_ids[-1] if framed else START] + [START] * (segments - 1)

    def pack_ids(self, context_ids: list[int], question_ids: list[int] | None = None, frame: bool = True) -> bytes:
        """A packet of shared ids (the context's, and the question's when given); a context that starts with
        the FRAMING ids leaves them out (framed) unless `frame` is False."""
        total = len(context_ids) + len(question_ids or [])
        if not context_ids or total > MAX_TOKENS:
            raise CodingError(f"a packet carries 1..{MAX_TOKENS} context + question tokens, got {total}")
        size = len(self.framing_ids)
        framed = frame and len(context_ids) > size and list(context_ids[:size]) == self.framing_ids
        context_ids = list(context_ids[size:]) if framed else context_ids
        flags = (FLAG_QUESTION if question_ids is not None else 0) | (FLAG_FRAMED if framed else 0)
        counts = write_varint(len(context_ids)) + (write_varint(len(question_ids)) if question_ids is not None else b"")
        segments = [context_ids] + ([question_ids] if question_ids is not None else [])
        body = MAGIC + bytes([VERSION, flags]) + self.id + counts + self._code(segments, framed)
        return body + struct.pack("<I", zlib.crc32(body))

    def message(self, text: str) -> bytes:
        """`text` as a bare message of this coder (its token count as a varint, then the range-coded ids; no
        header): what a question costs coded beside a context-only packet."""
        ids = self.vocabulary.encode(text)
        return write_varint(len(ids)) + self._code([ids])

    def read_message(self, data: bytes) -> str:
        """The text of a `message` (PacketError if malformed)."""
        count, offset = read_varint(bytes(data), 0, "message token")
        if count > self.tokens_per_word * max((len(data) - offset) // 4, 1):
            raise PacketError(f"message claims {count} tokens in {len(data) - offset} bytes")
        try:
            return self.vocabulary.decode(self._uncode(bytes(data[offset:]), [count], "message"))
        except CodingError as error:
            raise PacketError(str(error)) from None

    def encode(self, context: str, question: str | None = None, frame: bool = True) -> bytes:
        """A packet spelling `context` (and `question`) exactly (framed where it can be, unless `frame` is False)."""
        return self.pack_ids(self.vocabulary.encode(context),
                             None if question is None else self.vocabulary.encode(question), frame)

    def unpack(self, data: bytes) -> TokenPacket:
        """The ids of an untrusted version 2 packet; PacketError (one line) for anything malformed."""
        counts, payload = parse_header(data, self.id)
        framed = bool(data[3] & FLAG_FRAMED)
        words = len(payload) // 4
        if sum(counts) > self.tokens_per_word * max(words, 1):
            raise PacketError(f"packet claims {sum(counts)} tokens in {words} payload words")
        try:
            ids = self._uncode(payload, list(counts), "packet", framed)
            context, question = ids[: counts[0]], ids[counts[0]:] if len(counts) == 2 else None
            context = self.framing_ids + context if framed else context
            texts = self.vocabulary.decode(context), None if question is None else self.vocabulary.decode(question)
        except CodingError as error:                       # the ids must spell text: a receiver reads it
            raise PacketError(f"packet's tokens do not spell text: {error}") from None
        return TokenPacket(self.id, context, question, *texts)

    def decode(self, data: bytes) -> tuple[str, str | None]:
        """(context, question or None): the exact texts of an untrusted version 2 packet."""
        packet = self.unpack(data)
        return packet.context, packet.question


def is_version_2(data: bytes) -> bool:
    """Whether `data` starts as a version 2 packet does (b"LW" then version 2)."""
    return isinstance(data, (bytes, bytearray, memoryview)) and bytes(data[:3]) == MAGIC + bytes([VERSION])


def describe(data: bytes) -> dict:
    """The header fields and sizes of a version 2 packet, `crc` ("ok" or "mismatch") and `problem` (the one
    line parse_header raises, "" when the header holds); PacketError when it is not one at all."""
    if not is_version_2(data) or len(data) < 8 + CRC_SIZE:
        raise PacketError("not a version 2 packet (or shorter than its fixed header)")
    data = bytes(data)
    info = {"magic": data[:2].decode("latin-1"), "version": VERSION, "flags": data[3],
            "question": bool(data[3] & FLAG_QUESTION), "framed": bool(data[3] & FLAG_FRAMED), "coder_id": data[4:8].hex(), "total_bytes": len(data),
            "crc_bytes": CRC_SIZE}
    (crc,) = struct.unpack_from("<I", data, len(data) - CRC_SIZE)
    info["crc"] = "ok" if zlib.crc32(data[:-CRC_SIZE]) == crc else "mismatch"
    try:
        counts, payload = parse_header(data)
        info.update(context_tokens=counts[0], question_tokens=counts[1] if len(counts) == 2 else 0,
                    payload_bytes=len(payload), header_bytes=len(data) - len(payload) - CRC_SIZE, problem="")
    except PacketError as error:
        info["problem"] = str(error)
    return info


def parse_header(data: bytes, expected_coder_id: bytes | None = None) -> tuple[tuple[int, ...], bytes]:
    """((T,) or (T, Q), payload bytes) of a version 2 packet after checking magic, version, flags, coder id,
    counts, payload size and CRC; PacketError otherwise."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise PacketError(f"packet must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < 9 + CRC_SIZE:
        raise PacketError(f"packet too short: {len(data)} bytes, a version 2 packet has at least {9 + CRC_SIZE}")
    if data[:2] != MAGIC:
        raise PacketError(f"not a LatentWire packet: magic {data[:2]!r}, expected {MAGIC!r}")
    if data[2] != VERSION:
        raise PacketError(f"unsupported packet version {data[2]}; this reader supports version {VERSION} here")
    flags = data[3]
    if flags & ~(FLAG_QUESTION | FLAG_FRAMED):
        raise PacketError(f"packet has unknown flags 0x{flags:02x}")
    (crc,) = struct.unpack_from("<I", data, len(data) - CRC_SIZE)
    if zlib.crc32(data[:-CRC_SIZE]) != crc:
        raise PacketError("packet checksum mismatch: data corrupted in transit")
    ident = data[4:8]
    if expected_coder_id is not None and ident != expected_coder_id:
        raise PacketError(f"packet was coded with vocabulary/coder {ident.hex()}, this receiver knows "
                          f"{expected_coder_id.hex()}")
    context, offset = read_varint(data, 8, "context token")
    counts = (context,)
    if flags & FLAG_QUESTION:
        question, offset = read_varint(data, offset, "question token")
        counts = (context, question)
    if context == 0 or sum(counts) > MAX_TOKENS:
        raise PacketError(f"packet claims {context} context tokens and {sum(counts) - context} question tokens; "
                          f"allowed: 1..{MAX_TOKENS} in all, at least one of context")
    payload = data[offset:-CRC_SIZE]
    if not payload or len(payload) % 4:
        raise PacketError(f"packet payload of {len(payload)} bytes is not a whole number of 32-bit words")
    return counts, payload
