"""The wire layer: quantise a latent [M, d] and carry it in a versioned, checksummed packet."""
from latentwire.wire.packet import (
    HEADER_SIZE,
    MAGIC,
    VERSION,
    PacketError,
    decode_latent,
    encode_latent,
    pack,
    packet_size,
    unpack,
)
from latentwire.wire.quantize import BIT_WIDTHS, QuantizedLatent, dequantize, fake_quantize, quantize

__all__ = [
    "BIT_WIDTHS",
    "HEADER_SIZE",
    "MAGIC",
    "VERSION",
    "PacketError",
    "QuantizedLatent",
    "decode_latent",
    "dequantize",
    "encode_latent",
    "fake_quantize",
    "pack",
    "packet_size",
    "quantize",
    "unpack",
]
