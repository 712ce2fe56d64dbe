"""LatentWire: learned prompt compression shared by heterogeneous frozen LLMs.

`from latentwire import LatentWire` (loaded on first use, so that `import latentwire.errors` stays light):
`LatentWire.from_pretrained("default")`, `.encode(question, context)`, `.answer(packet, receiver, question)`.
"""
from __future__ import annotations

__all__ = ["LatentWire"]


def __getattr__(name: str):
    if name == "LatentWire":
        from latentwire.system import LatentWire
        return LatentWire
    raise AttributeError(f"module 'latentwire' has no attribute {name!r}")
