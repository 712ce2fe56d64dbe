"""Packet authentication: an HMAC-SHA256 tag under a key the sender and receiver share, appended to a packet.

    signed = packet + HMAC-SHA256(key, packet)      (32 more bytes, reported apart from the packet's)

The packet's own CRC32 only detects corruption; the tag shows that someone holding the key made it.
"""
from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from latentwire.errors import ConfigError, PacketError

TAG_SIZE = 32
MIN_KEY_BYTES = 16


def sign(packet: bytes, key: bytes) -> bytes:
    """`packet` with its 32-byte HMAC-SHA256 tag under `key` appended."""
    return bytes(packet) + hmac.new(key, bytes(packet), hashlib.sha256).digest()


def verify(signed: bytes, key: bytes) -> bytes:
    """The packet inside `signed` (its tag removed) when the tag is right under `key`; PacketError otherwise
    (an untagged packet fails the same way: its last 32 bytes are not its tag)."""
    signed = bytes(signed)
    if len(signed) <= TAG_SIZE:
        raise PacketError(f"authenticated packet too short: {len(signed)} bytes, the tag alone is {TAG_SIZE}")
    packet, tag = signed[:-TAG_SIZE], signed[-TAG_SIZE:]
    if not hmac.compare_digest(tag, hmac.new(key, packet, hashlib.sha256).digest()):
        raise PacketError("packet authentication failed: HMAC-SHA256 tag missing or wrong (untagged, altered, "
                          "or signed with another key)")
    return packet


def read_secret(path: str | Path, what: str, minimum: int = MIN_KEY_BYTES) -> bytes:
    """The bytes of a key or token file (surrounding whitespace stripped); ConfigError naming the file when it
    cannot be read or holds fewer than `minimum` bytes."""
    try:
        secret = Path(path).read_bytes().strip()
    except OSError as error:
        raise ConfigError(f"{what} {path}: {error.strerror or error}") from None
    if len(secret) < minimum:
        raise ConfigError(f"{what} {path} holds {len(secret)} bytes; at least {minimum} are needed")
    return secret
