"""Versioned binary packet carrying one example's quantised latent.

Layout (all integers little-endian, no padding)::

    offset  size  field
    0       4     magic b"LWIR"
    4       1     version (u8, = 1)
    5       1     bits (u8: 16, 8, 6 or 4)
    6       2     group_size (u16, 1..4096)
    8       2     M (u16, >= 1)
    10      2     d (u16, >= 1; M*d <= 1_000_000)
    12      8     checkpoint id (8 raw bytes)
    20      4     payload length in bytes (u32)
    24      n     payload
    24+n    4     CRC32 (u32, zlib.crc32) of bytes [0, 24+n)

Payload for bits=16: M*d float16 values, row-major. Otherwise: n_groups = ceil(M*d /
group_size) float16 scales, then the M*d codes, each stored as the unsigned integer
code + qmax in exactly `bits` bits, packed LSB-first contiguously across bytes and
padded with zero bits to a whole byte.

The CRC32 is an error check against corruption in transit, not authentication: anyone can make a packet
with a valid CRC. Packets that must come from a known sender carry an HMAC-SHA256 tag under a shared key
(latentwire/wire/auth.py), appended after the CRC and counted separately from the packet's bytes.

`unpack` treats every byte as untrusted: every malformed input raises PacketError with a
one-line message, and declared sizes are checked against len(data) before anything sized
from the header is allocated.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np
import torch
from torch import Tensor

from latentwire.errors import PacketError
from latentwire.wire.quantize import (
    BIT_WIDTHS,
    MAX_GROUP_SIZE,
    QuantizedLatent,
    check_params,
    dequantize,
    n_groups,
    qmax_for,
    quantize,
)

MAGIC = b"LWIR"
VERSION = 1
CHECKPOINT_ID_SIZE = 8
MAX_VALUES = 1_000_000
_HEADER = struct.Struct("<4sBBHHH8sI")
HEADER_SIZE = _HEADER.size  # 24
CRC_SIZE = 4
_MAX_DIM = 0xFFFF


def _payload_size(m: int, d: int, bits: int, group_size: int) -> int:
    """Payload bytes for an [M, d] latent: values, or scales plus bit-packed codes."""
    n = m * d
    if bits == 16:
        return 2 * n
    return 2 * n_groups(n, group_size) + (n * bits + 7) // 8


def packet_size(m: int, d: int, bits: int, group_size: int) -> int:
    """Exact packet length in bytes for an [M, d] latent: header + payload + CRC32."""
    check_params(bits, group_size)
    _check_dims(m, d, ValueError)
    return HEADER_SIZE + _payload_size(m, d, bits, group_size) + CRC_SIZE


def _check_dims(m: int, d: int, error: type[ValueError]) -> None:
    """Raise `error` unless 1 <= M, d <= 65535 and M*d <= MAX_VALUES."""
    if not (1 <= m <= _MAX_DIM and 1 <= d <= _MAX_DIM):
        raise error(f"latent shape must have 1 <= M, d <= {_MAX_DIM}, got M={m}, d={d}")
    if m * d > MAX_VALUES:
        raise error(f"latent has M*d = {m * d} values, more than the limit {MAX_VALUES}")


def _pack_bits(values: np.ndarray, bits: int) -> bytes:
    """Pack unsigned ints [n] (each < 2**bits) LSB-first into ceil(n*bits/8) bytes."""
    shifts = np.arange(bits, dtype=np.uint16)
    stream = ((values.astype(np.uint16)[:, None] >> shifts) & 1).astype(np.uint8)
    return np.packbits(stream.reshape(-1), bitorder="little").tobytes()


def _unpack_bits(raw: bytes, count: int, bits: int) -> tuple[np.ndarray, bool]:
    """Inverse of _pack_bits: (unsigned ints [count], whether all padding bits are zero)."""
    stream = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")
    per_value = stream[: count * bits].reshape(count, bits)
    values = np.zeros(count, dtype=np.uint16)
    for i in range(bits):  # one vectorised pass per bit position, not per value
        values |= per_value[:, i].astype(np.uint16) << i
    return values, not stream[count * bits:].any()


def _check_latent(q: QuantizedLatent) -> None:
    """Raise ValueError unless q is consistent enough to be packed."""
    check_params(q.bits, q.group_size)
    m, d = q.shape
    _check_dims(m, d, ValueError)
    if q.codes.numel() != m * d:
        raise ValueError(f"codes hold {q.codes.numel()} values, shape {q.shape} needs {m * d}")
    if q.bits == 16:
        if not torch.isfinite(q.codes.detach().half()).all():
            raise ValueError("float16 values must be finite (|x| <= 65504): the receiver refuses NaN and inf")
    else:
        if q.scales is None or q.scales.numel() != q.n_groups:
            raise ValueError(f"expected {q.n_groups} scales for {m * d} values in groups of {q.group_size}")
        scales = q.scales.detach().half()
        if not torch.isfinite(scales).all() or (scales < 0).any():
            raise ValueError("scales must be finite, non-negative float16 values: the receiver refuses others")
        if q.codes.is_floating_point() and not torch.equal(q.codes, q.codes.round()):
            raise ValueError("codes must be whole numbers")
        qmax = qmax_for(q.bits)
        if q.codes.numel() and int(q.codes.to(torch.int64).abs().max()) > qmax:
            raise ValueError(f"codes exceed +-{qmax} for {q.bits}-bit quantisation")


def _payload(q: QuantizedLatent) -> bytes:
    """Serialise the payload of a checked QuantizedLatent."""
    if q.bits == 16:
        return q.codes.detach().cpu().half().numpy().astype("<f2").tobytes()
    scales = q.scales.detach().cpu().half().numpy().astype("<f2").tobytes()
    unsigned = q.codes.detach().cpu().to(torch.int64).numpy().reshape(-1) + qmax_for(q.bits)
    return scales + _pack_bits(unsigned, q.bits)


def pack(q: QuantizedLatent, checkpoint_id: bytes) -> bytes:
    """Serialise one QuantizedLatent ([M, d] latent) into a packet (see module docstring)."""
    if not isinstance(checkpoint_id, (bytes, bytearray)) or len(checkpoint_id) != CHECKPOINT_ID_SIZE:
        raise ValueError(f"checkpoint id must be exactly {CHECKPOINT_ID_SIZE} bytes, got {checkpoint_id!r}")
    _check_latent(q)
    payload = _payload(q)
    m, d = q.shape
    header = _HEADER.pack(MAGIC, VERSION, q.bits, q.group_size, m, d, bytes(checkpoint_id), len(payload))
    body = header + payload
    return body + struct.pack("<I", zlib.crc32(body))


def _parse_header(data: bytes) -> tuple[int, int, int, int, bytes]:
    """Validate the header and sizes of `data`; return (bits, group_size, M, d, checkpoint id)."""
    if len(data) < HEADER_SIZE:
        raise PacketError(f"packet too short for a header: {len(data)} bytes, need at least {HEADER_SIZE}")
    magic, version, bits, group_size, m, d, ckpt, declared = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise PacketError(f"not a LatentWire packet: magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise PacketError(f"unsupported packet version {version}; this reader supports version {VERSION}")
    if bits not in BIT_WIDTHS:
        raise PacketError(f"unsupported bit width {bits}; expected one of {BIT_WIDTHS}")
    if not 1 <= group_size <= MAX_GROUP_SIZE:
        raise PacketError(f"invalid group size {group_size}; expected 1..{MAX_GROUP_SIZE}")
    _check_dims(m, d, PacketError)
    expected = _payload_size(m, d, bits, group_size)
    if declared != expected:
        raise PacketError(f"payload length field says {declared} bytes, header implies {expected}")
    total = HEADER_SIZE + expected + CRC_SIZE
    if len(data) < total:
        raise PacketError(f"packet truncated: {len(data)} bytes, header implies {total}")
    if len(data) > total:
        raise PacketError(f"packet has {len(data) - total} trailing bytes after {total}")
    (crc,) = struct.unpack_from("<I", data, total - CRC_SIZE)
    if zlib.crc32(data[: total - CRC_SIZE]) != crc:
        raise PacketError("packet checksum mismatch: data corrupted in transit")
    return bits, group_size, m, d, ckpt


def describe(data: bytes) -> dict:
    """The header fields and sizes of `data` as a dict, with `crc` ("ok" or "mismatch") and `problem` (the
    one line unpack would raise, "" for a valid packet); PacketError only when no header can be read."""
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) < HEADER_SIZE:
        raise PacketError(f"packet too short for a header: {len(data)} bytes, need at least {HEADER_SIZE}")
    data = bytes(data)
    magic, version, bits, group_size, m, d, ckpt, declared = _HEADER.unpack_from(data)
    info = {"magic": magic.decode("latin-1"), "version": version, "bits": bits, "group_size": group_size,
            "M": m, "d": d, "checkpoint_id": ckpt.hex(), "payload_bytes": declared, "header_bytes": HEADER_SIZE,
            "crc_bytes": CRC_SIZE, "total_bytes": len(data)}
    end = min(len(data), HEADER_SIZE + declared + CRC_SIZE)
    crc_ok = end >= HEADER_SIZE + CRC_SIZE and zlib.crc32(data[: end - CRC_SIZE]) == struct.unpack_from(
        "<I", data, end - CRC_SIZE)[0]
    info["crc"] = "ok" if crc_ok else "mismatch"
    try:
        _decode_payload(data, *_parse_header(data)[:4])
        info["problem"] = ""
    except PacketError as error:
        info["problem"] = str(error)
    return info


def _read_fp16(data: bytes, offset: int, count: int, what: str) -> Tensor:
    """Read `count` little-endian float16 values at `offset`; PacketError if any is non-finite."""
    values = np.frombuffer(data, dtype="<f2", count=count, offset=offset).astype(np.float16)
    if not np.isfinite(values).all():
        raise PacketError(f"packet holds non-finite float16 {what}")
    return torch.from_numpy(values)


def _decode_payload(data: bytes, bits: int, group_size: int, m: int, d: int) -> QuantizedLatent:
    """Decode the (size-checked) payload into a QuantizedLatent."""
    n = m * d
    if bits == 16:
        values = _read_fp16(data, HEADER_SIZE, n, "values")
        return QuantizedLatent((m, d), bits, group_size, values, None)
    g = n_groups(n, group_size)
    scales = _read_fp16(data, HEADER_SIZE, g, "scales")
    if (scales < 0).any():
        raise PacketError("packet holds a negative scale")
    start = HEADER_SIZE + 2 * g
    raw = data[start: start + (n * bits + 7) // 8]
    unsigned, clean_padding = _unpack_bits(raw, n, bits)
    qmax = qmax_for(bits)
    if unsigned.max() > 2 * qmax:
        raise PacketError(f"packet holds code {int(unsigned.max())} above {2 * qmax} for {bits}-bit codes")
    if not clean_padding:
        raise PacketError("packet has non-zero padding bits after the codes")
    codes = torch.from_numpy((unsigned.astype(np.int16) - qmax).astype(np.int8))
    return QuantizedLatent((m, d), bits, group_size, codes, scales)


def unpack(data: bytes, expected_checkpoint_id: bytes | None = None) -> QuantizedLatent:
    """Parse an untrusted packet into a QuantizedLatent ([M, d] latent); PacketError if malformed."""
    if expected_checkpoint_id is not None and (not isinstance(expected_checkpoint_id, (bytes, bytearray, memoryview))
                                               or len(expected_checkpoint_id) != CHECKPOINT_ID_SIZE):
        raise ValueError(f"expected checkpoint id must be exactly {CHECKPOINT_ID_SIZE} bytes, got "
                         f"{type(expected_checkpoint_id).__name__} {expected_checkpoint_id!r:.40}")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise PacketError(f"packet must be bytes, got {type(data).__name__}")
    data = bytes(data)
    bits, group_size, m, d, ckpt = _parse_header(data)
    if expected_checkpoint_id is not None and ckpt != bytes(expected_checkpoint_id):
        expected = bytes(expected_checkpoint_id).hex()
        raise PacketError(f"packet was made by checkpoint {ckpt.hex()}, this receiver expects {expected}")
    return _decode_payload(data, bits, group_size, m, d)


def encode_latent(z: Tensor, bits: int, group_size: int, checkpoint_id: bytes) -> bytes:
    """Quantise one latent z [M, d] and pack it: `pack(quantize(z, bits, group_size), id)`."""
    return pack(quantize(z, bits, group_size), checkpoint_id)


def decode_latent(data: bytes, expected_checkpoint_id: bytes | None = None) -> Tensor:
    """Unpack a packet and dequantise it to a float32 latent [M, d]."""
    return dequantize(unpack(data, expected_checkpoint_id))
