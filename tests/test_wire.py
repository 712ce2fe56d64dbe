"""Wire layer: quantisation accuracy, bit-exact packets, and a parser that survives hostile bytes."""
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latentwire.wire import (
    BIT_WIDTHS,
    HEADER_SIZE,
    PacketError,
    QuantizedLatent,
    decode_latent,
    dequantize,
    encode_latent,
    fake_quantize,
    pack,
    packet_size,
    quantize,
    unpack,
)
from latentwire.wire.quantize import max_value

CKPT = bytes.fromhex("0123456789abcdef")
HEADER = struct.Struct("<4sBBHHH8sI")
FIELDS = ("magic", "version", "bits", "group_size", "m", "d", "ckpt", "payload_len")


def latent(m=5, d=13, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, d, generator=g) * torch.logspace(-2, 1, d)  # mixed magnitudes


def reseal(body: bytes) -> bytes:
    """Append a correct CRC32 to `body` (a packet without its checksum)."""
    return body + struct.pack("<I", zlib.crc32(body))


def with_header(packet: bytes, **changes) -> bytes:
    """Rewrite header fields and recompute the CRC, so only the field check can fire."""
    fields = dict(zip(FIELDS, HEADER.unpack_from(packet)))
    fields.update(changes)
    return reseal(HEADER.pack(*fields.values()) + packet[HEADER_SIZE:-4])


def with_payload_bytes(packet: bytes, offset: int, new: bytes) -> bytes:
    """Overwrite payload bytes at `offset` (from the payload start) and recompute the CRC."""
    body = bytearray(packet[:-4])
    body[HEADER_SIZE + offset: HEADER_SIZE + offset + len(new)] = new
    return reseal(bytes(body))


def raises(data, match, expected=None):
    with pytest.raises(PacketError, match=match):
        unpack(data, expected)


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("bits", BIT_WIDTHS)
@pytest.mark.parametrize("group_size", [1, 7, 32, 64, 4096])
def test_round_trip_is_bit_exact(bits, group_size):
    z = latent()  # 65 values: 7, 32 and 64 do not divide it
    q = quantize(z, bits, group_size)
    packet = pack(q, CKPT)
    back = unpack(packet, CKPT)
    assert (back.shape, back.bits, back.group_size) == ((5, 13), bits, group_size)
    assert back.codes.dtype == q.codes.dtype and torch.equal(back.codes, q.codes)
    if bits == 16:
        assert back.scales is None and q.scales is None
    else:
        assert torch.equal(back.scales, q.scales)
    assert pack(back, CKPT) == packet
    assert torch.equal(decode_latent(encode_latent(z, bits, group_size, CKPT)), dequantize(q))
    assert dequantize(q).dtype == torch.float32 and dequantize(q).shape == (5, 13)


@pytest.mark.parametrize("m,d", [(1, 1), (3, 5), (32, 16), (7, 100)])
@pytest.mark.parametrize("bits", BIT_WIDTHS)
@pytest.mark.parametrize("group_size", [1, 5, 32, 4096])
def test_packet_size_is_exact(m, d, bits, group_size):
    packet = encode_latent(latent(m, d), bits, group_size, CKPT)
    assert packet_size(m, d, bits, group_size) == len(packet)


def test_int4_packets_are_about_four_times_smaller_than_fp16():
    fp16, int4 = packet_size(32, 16, 16, 32), packet_size(32, 16, 4, 32)
    assert (fp16, int4) == (1052, 316)
    overhead = HEADER_SIZE + 4
    assert 3.5 < (fp16 - overhead) / (int4 - overhead) <= 4  # payload; scales cost the rest
    assert 3.2 < fp16 / int4 < 4


# ---------------------------------------------------------------- accuracy


@pytest.mark.parametrize("bits", [8, 6, 4])
@pytest.mark.parametrize("group_size", [1, 7, 32])
def test_error_is_at_most_half_a_step_per_group(bits, group_size):
    z = latent(6, 20, seed=bits)
    q = quantize(z, bits, group_size)
    err = (dequantize(q) - z).abs().flatten()
    err = torch.nn.functional.pad(err, (0, (-err.numel()) % group_size)).reshape(-1, group_size)
    bound = q.scales.float() / 2 * (1 + 1e-5) + 1e-12
    assert (err.amax(dim=1) <= bound).all()


def test_fp16_error_is_relative_half_ulp():
    z = latent()
    err = (dequantize(quantize(z, 16, 32)) - z).abs()
    assert (err <= z.abs() * 2.0**-11 + 1e-12).all()


def test_more_bits_give_smaller_error():
    z = torch.randn(32, 64, generator=torch.Generator().manual_seed(1))
    errs = [(dequantize(quantize(z, b, 32)) - z).abs().max().item() for b in BIT_WIDTHS]
    assert errs == sorted(errs) and errs[1] < errs[3]  # 16 < 8 < 6 < 4


@pytest.mark.parametrize("bits", BIT_WIDTHS)
@pytest.mark.parametrize("special", ["zeros", "huge", "enormous", "tiny"])
def test_degenerate_inputs_give_no_nan(bits, special):
    z = torch.zeros(4, 8)
    if special != "zeros":
        z = latent(4, 8) * (1e-12 if special == "tiny" else 1.0)
        z[1, 3] = {"huge": 1e6, "enormous": 1e30, "tiny": 1e-10}[special]
    assert torch.isfinite(fake_quantize(z[None], bits, 8)[0]).all()  # training never raises
    if z.abs().max() > max_value(bits):  # the sender refuses what it could only clip
        with pytest.raises(ValueError, match="without clipping"):
            encode_latent(z, bits, 8, CKPT)
    else:
        assert torch.isfinite(decode_latent(encode_latent(z, bits, 8, CKPT))).all()
    if special == "zeros":
        assert torch.equal(dequantize(quantize(z, bits, 8)), z)


def test_bad_parameters_raise_value_error():
    z = latent()
    for bits, gs in [(5, 32), (32, 32), (8, 0), (8, 4097)]:
        with pytest.raises(ValueError):
            quantize(z, bits, gs)
        with pytest.raises(ValueError):
            fake_quantize(z, bits, gs)
    with pytest.raises(ValueError):
        quantize(torch.zeros(3), 8, 4)
    with pytest.raises(ValueError):
        quantize(torch.tensor([[1.0, float("nan")]]), 8, 4)
    for ckpt in (b"short", b"123456789", "01234567"):
        with pytest.raises(ValueError, match="checkpoint id"):
            pack(quantize(z, 8, 4), ckpt)


# ---------------------------------------------------------------- quantisation-aware training


@pytest.mark.parametrize("bits", BIT_WIDTHS)
@pytest.mark.parametrize("group_size", [1, 7, 32])
def test_fake_quantize_matches_the_wire_per_example(bits, group_size):
    z = torch.stack([latent(5, 13, seed=s) * (s + 1) for s in range(4)])
    out = fake_quantize(z, bits, group_size)
    assert out.shape == z.shape
    for i in range(len(z)):
        assert torch.equal(out[i], dequantize(quantize(z[i], bits, group_size)))
        assert torch.equal(out[i], decode_latent(encode_latent(z[i], bits, group_size, CKPT)))


@pytest.mark.parametrize("bits", BIT_WIDTHS)
def test_fake_quantize_gradient_is_straight_through(bits):
    z = torch.randn(3, 5, 13, requires_grad=True)
    upstream = torch.randn(3, 5, 13)
    fake_quantize(z, bits, 7).backward(upstream)
    assert torch.equal(z.grad, upstream)


# ---------------------------------------------------------------- malformed packets


@pytest.fixture
def packet():
    return encode_latent(latent(3, 5), 6, 4, CKPT)  # 15 six-bit codes: 90 bits, 6 padding bits


def test_every_truncation_is_rejected(packet):
    for n in range(len(packet)):
        raises(packet[:n], "too short for a header" if n < HEADER_SIZE else "truncated")


def test_trailing_bytes_are_rejected(packet):
    raises(packet + b"\x00", "1 trailing bytes")
    raises(packet + packet, "trailing bytes")


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"magic": b"LWIX"}, "magic"),
        ({"version": 2}, "unsupported packet version 2"),
        ({"version": 0}, "unsupported packet version 0"),
        ({"bits": 5}, "unsupported bit width 5"),
        ({"bits": 0}, "unsupported bit width 0"),
        ({"group_size": 0}, "invalid group size 0"),
        ({"group_size": 4097}, "invalid group size 4097"),
        ({"m": 0}, "M=0"),
        ({"d": 0}, "d=0"),
        ({"m": 65535, "d": 65535}, "more than the limit"),
        ({"payload_len": 7}, "payload length field says 7"),
        ({"payload_len": 2**32 - 1}, "payload length field"),
    ],
)
def test_bad_header_fields_are_named(packet, changes, match):
    raises(with_header(packet, **changes), match)


def test_huge_declared_latent_with_tiny_data_fails_without_allocating(packet):
    m = d = 1000  # exactly the 1_000_000 value limit
    declared = 2 * (m * d // 4) + m * d * 6 // 8
    evil = with_header(packet, m=m, d=d, payload_len=declared)
    tracemalloc.start()
    try:
        raises(evil, "truncated")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


def test_every_flipped_bit_is_caught(packet):
    for i in range(len(packet) * 8):
        bad = bytearray(packet)
        bad[i // 8] ^= 1 << (i % 8)
        if i // 8 >= HEADER_SIZE:  # payload and CRC: only the checksum can tell
            raises(bytes(bad), "checksum")
        else:
            with pytest.raises(PacketError):
                unpack(bytes(bad))


def test_wrong_checkpoint_names_both_ids(packet):
    other = bytes.fromhex("fedcba9876543210")
    raises(packet, "made by checkpoint 0123456789abcdef, this receiver expects fedcba9876543210", other)
    assert unpack(packet, CKPT).bits == 6 and unpack(packet).bits == 6


def test_codes_out_of_range_are_rejected():
    int8 = encode_latent(latent(2, 4), 8, 8, CKPT)
    raises(with_payload_bytes(int8, 2, b"\xff"), "code 255 above 254")
    int4 = encode_latent(latent(2, 4), 4, 8, CKPT)
    raises(with_payload_bytes(int4, 2, b"\x0f"), "code 15 above 14")
    int6 = encode_latent(latent(2, 4), 6, 8, CKPT)
    raises(with_payload_bytes(int6, 2, b"\x3f"), "code 63 above 62")


def test_non_canonical_padding_is_rejected(packet):
    last = len(packet) - HEADER_SIZE - 5  # last payload byte: 2 code bits, then 6 padding bits
    raises(with_payload_bytes(packet, last, b"\x80"), "padding bits")


@pytest.mark.parametrize("value", [b"\x00\x7c", b"\x00\xfc", b"\x01\x7e"])  # +inf, -inf, NaN
def test_non_finite_scales_and_values_are_rejected(value):
    raises(with_payload_bytes(encode_latent(latent(), 8, 16, CKPT), 2, value), "non-finite float16 scales")
    raises(with_payload_bytes(encode_latent(latent(), 16, 16, CKPT), 4, value), "non-finite float16 values")


def test_negative_scale_is_rejected():
    raises(with_payload_bytes(encode_latent(latent(), 8, 16, CKPT), 0, b"\x00\xbc"), "negative scale")


def test_non_bytes_input_is_rejected():
    with pytest.raises(PacketError, match="must be bytes"):
        unpack("LWIR")  # type: ignore[arg-type]
    assert isinstance(unpack(bytearray(encode_latent(latent(), 4, 8, CKPT))), QuantizedLatent)


# ---------------------------------------------------------------- fuzzing


def _accepts_or_packet_error(data: bytes) -> None:
    try:
        out = unpack(data)
    except PacketError:
        return
    assert isinstance(out, QuantizedLatent)
    assert torch.isfinite(dequantize(out)).all()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash(data):
    _accepts_or_packet_error(data)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([0, 1, 4, 5, 6, 8, 16, 255]),
    st.integers(0, 5000),
    st.integers(0, 40),
    st.integers(0, 40),
    st.integers(0, 2**32 - 1),
    st.booleans(),
)
def test_plausible_headers_with_random_payload_never_crash(bits, group_size, m, d, seed, exact):
    try:
        size = packet_size(m, d, bits, group_size) - HEADER_SIZE - 4 if exact else seed % 300
    except ValueError:
        size = seed % 300
    payload = np.random.default_rng(seed).bytes(size)
    body = HEADER.pack(b"LWIR", 1, bits, group_size, m, d, CKPT, len(payload)) + payload
    _accepts_or_packet_error(reseal(body))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(BIT_WIDTHS), st.integers(0, 400), st.binary(min_size=1, max_size=8), st.booleans())
def test_mutated_packets_never_crash(bits, position, patch, keep_crc):
    good = encode_latent(latent(4, 9), bits, 8, CKPT)
    pos = position % len(good)
    bad = good[:pos] + patch + good[pos + len(patch):]
    _accepts_or_packet_error(bad if keep_crc else reseal(bad[:-4]))


def test_pack_rejects_inconsistent_latents():
    q = quantize(latent(), 8, 8)
    with pytest.raises(ValueError, match="codes exceed"):
        pack(QuantizedLatent(q.shape, 8, 8, torch.full_like(q.codes, -128), q.scales), CKPT)
    with pytest.raises(ValueError, match="scales"):
        pack(QuantizedLatent(q.shape, 8, 8, q.codes, q.scales[:-1]), CKPT)
    with pytest.raises(ValueError, match="codes hold"):
        pack(QuantizedLatent(q.shape, 8, 8, q.codes[:-1], q.scales), CKPT)
    assert np.array_equal(unpack(pack(q, CKPT)).codes.numpy(), q.codes.numpy())
