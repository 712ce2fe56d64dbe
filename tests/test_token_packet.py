"""Packet version 2 (token indices range-coded under the shared unigram table) on the tiny receivers'
vocabularies: exact round trips, a compact header, and every malformed input a one-line PacketError."""
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentwire.errors import CodingError, PacketError
from latentwire.wire.shared_vocab import SharedVocabulary
from latentwire.wire.token_packet import CRC_SIZE, MAGIC, TokenWire, parse_header, read_varint, write_varint
from latentwire.wire.unigram import UnigramTable, fit_unigram

TEXTS = ["Paris is the capital of France and a big city.", "The Normans were in Normandy in the 10th century.",
         "Who wrote it? When was it built? How many people live there? 1999 2001 42"]
CONTEXT = " ".join(TEXTS * 6)


@pytest.fixture(scope="module")
def wire(pair):
    vocabulary = SharedVocabulary.from_tokenizers(pair["a"].tokenizer, [pair["b"].tokenizer])
    return TokenWire(vocabulary, fit_unigram(vocabulary, TEXTS * 3, progress=False))


@pytest.fixture(scope="module")
def bigram_wire(pair):
    from latentwire.wire.bigram import fit_bigram

    vocabulary = SharedVocabulary.from_tokenizers(pair["a"].tokenizer, [pair["b"].tokenizer])
    return TokenWire(vocabulary, fit_unigram(vocabulary, TEXTS * 3, progress=False),
                     fit_bigram(vocabulary, TEXTS * 3, progress=False))


def test_an_order1_coder_round_trips_codes_shorter_and_is_another_coder(wire, bigram_wire):
    for context, question in ((CONTEXT, "What is the capital?"), ("Ünïcödé — 北京 😀", None), ("x", "")):
        assert bigram_wire.decode(bigram_wire.encode(context, question)) == (context, question)
    assert len(bigram_wire.encode(CONTEXT)) < len(wire.encode(CONTEXT))
    assert bigram_wire.id != wire.id
    with pytest.raises(PacketError, match="coded with vocabulary/coder"):
        wire.unpack(bigram_wire.encode(CONTEXT))
    assert bigram_wire.read_message(bigram_wire.message("Who wrote it?")) == "Who wrote it?"


@pytest.mark.parametrize("name", ["wire", "bigram_wire"])
def test_a_framed_context_leaves_the_framing_out_and_gets_it_back(name, request):
    from latentwire.wire.token_packet import FLAG_FRAMED, FRAMING, describe

    coder = request.getfixturevalue(name)
    framed, bare = f"{FRAMING} {CONTEXT}", f" {CONTEXT}"
    packet = coder.encode(framed, "What is the capital?")
    assert packet[3] & FLAG_FRAMED and describe(packet)["framed"]
    assert coder.decode(packet) == (framed, "What is the capital?")
    assert coder.unpack(packet).context_ids == coder.vocabulary.encode(framed)
    sent_whole = coder.encode(framed, "What is the capital?", frame=False)
    assert not sent_whole[3] & FLAG_FRAMED and len(packet) <= len(sent_whole)
    assert coder.decode(sent_whole) == coder.decode(packet)
    assert describe(packet)["context_tokens"] == len(coder.vocabulary.encode(framed)) - len(coder.framing_ids)
    for text in (CONTEXT, FRAMING, FRAMING + "x"):     # not framed, or nothing after the framing: sent whole
        assert coder.decode(coder.encode(text)) == (text, None)
    assert not coder.encode(FRAMING)[3] & FLAG_FRAMED and not coder.encode(bare)[3] & FLAG_FRAMED


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 60), st.binary(min_size=1, max_size=6))
def test_mutated_order1_packets_never_crash(bigram_wire, position, patch):
    body = bytearray(bigram_wire.encode(CONTEXT, "What is the capital?")[:-CRC_SIZE])
    body[position: position + len(patch)] = patch
    try:
        assert isinstance(bigram_wire.decode(_with_crc(bytes(body)))[0], str)
    except PacketError as error:
        assert "\n" not in str(error)


@pytest.fixture(scope="module")
def packet(wire):
    return wire.encode(CONTEXT, "What is the capital?")


@pytest.mark.parametrize("context, question", [(CONTEXT, None), (CONTEXT, "What is the capital?"),
                                               ("Ünïcödé — 北京 😀 tabs\tand\nnewlines", "¿Qué?"), ("x", "")])
def test_round_trip_is_exact(wire, context, question):
    assert wire.decode(wire.encode(context, question)) == (context, question)


def test_header_and_crc_take_at_most_16_bytes_and_the_ids_cost_what_the_table_says(wire):
    ids = wire.vocabulary.encode(CONTEXT)
    data = wire.encode(CONTEXT)
    counts, payload = parse_header(data, wire.id)
    assert counts == (len(ids),) and len(data) - len(payload) <= 16
    ideal_bits = -sum(__import__("math").log2(wire.table.probabilities()[i]) for i in ids)
    assert len(payload) * 8 <= ideal_bits + 64     # within two 32-bit words of the entropy bound


def test_another_table_is_another_coder_id_and_its_packets_are_refused(wire, packet):
    other = TokenWire(wire.vocabulary, UnigramTable(wire.table.fingerprint, [c + 1 for c in wire.table.counts]))
    assert other.id != wire.id
    with pytest.raises(PacketError, match=f"coded with vocabulary/coder {wire.id.hex()}"):
        other.decode(packet)
    with pytest.raises(CodingError, match="another shared vocabulary"):
        TokenWire(wire.vocabulary, UnigramTable("0" * 64, wire.table.counts))


@pytest.mark.parametrize("value", [0, 1, 127, 128, 16383, 16384, (1 << 21) - 1])
def test_varints_round_trip(value):
    assert read_varint(write_varint(value) + b"\xff", 0, "x") == (value, len(write_varint(value)))


def test_every_truncation_and_every_flipped_bit_is_refused(wire, packet):
    for end in range(len(packet)):
        with pytest.raises(PacketError):
            wire.unpack(packet[:end])
    for bit in range(8 * len(packet)):
        flipped = bytearray(packet)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(PacketError):
            wire.unpack(bytes(flipped))


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize("change, match", [
    (lambda p: b"XX" + p[2:], "not a LatentWire packet"),
    (lambda p: p[:2] + b"\x03" + p[3:], "unsupported packet version 3"),
    (lambda p: p[:3] + b"\x04" + p[4:], "unknown flags"),
    (lambda p: p[:8] + b"\x00" + p[9:], "claims 0 context tokens"),
    (lambda p: p[:8] + b"\x80\x80\x80\x01" + p[9:], "longer than 3 bytes"),
    (lambda p: p[:-2], "not a whole number of 32-bit words"),
    (lambda p: p[:8] + b"\xff\xff\x03" + p[10:], "claims"),
])
def test_malformed_headers_with_a_valid_crc_are_named(wire, packet, change, match):
    with pytest.raises(PacketError, match=match):
        wire.unpack(_with_crc(change(packet[:-CRC_SIZE])))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_random_bytes_never_crash(wire, data):
    with pytest.raises(PacketError):
        wire.decode(data)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 60), st.binary(min_size=1, max_size=6), st.booleans())
def test_mutated_packets_with_recomputed_crc_never_crash(wire, packet, position, patch, keep_crc):
    body = bytearray(packet[:-CRC_SIZE])
    body[position: position + len(patch)] = patch
    data = _with_crc(bytes(body)) if not keep_crc else bytes(body) + packet[-CRC_SIZE:]
    try:
        context, question = wire.decode(data)
        assert isinstance(context, str)            # a mutation may still spell some text: that is all
    except PacketError as error:
        assert "\n" not in str(error)


def test_magic_tells_version_1_from_version_2():
    from latentwire.wire.packet import MAGIC as V1_MAGIC
    assert V1_MAGIC[:2] == MAGIC and V1_MAGIC[2] != 2


def test_inspect_reads_a_version_2_header(wire, packet, tmp_path, capsys):
    import json

    from latentwire.cli import main
    from latentwire.service.commands import inspect_packet
    info = inspect_packet(packet)
    assert info["version"] == 2 and info["question"] and info["crc"] == "ok" and not info["problem"]
    assert info["coder_id"] == wire.id.hex() and info["header_bytes"] + info["payload_bytes"] + 4 == len(packet)
    path = tmp_path / "p.lwp"
    path.write_bytes(packet[:-1] + bytes([packet[-1] ^ 1]))
    assert main(["inspect", str(path)]) == 2
    assert json.loads(capsys.readouterr().out)["crc"] == "mismatch"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40))
def test_bare_question_messages_round_trip_and_random_ones_never_crash(wire, data):
    assert wire.read_message(wire.message("Who wrote it, and when?")) == "Who wrote it, and when?"
    try:
        assert isinstance(wire.read_message(data), str)
    except PacketError as error:
        assert "\n" not in str(error)
