"""Load a trained LatentWire checkpoint for evaluation or serving."""
from __future__ import annotations

from pathlib import Path

from latentwire.llm.loader import Receiver
from latentwire.system import LatentWire
from latentwire.train.checkpoint import read_config, resolve_checkpoint

__all__ = ["load_trained", "resolve_checkpoint", "reader_names"]


def reader_names(path: str | Path) -> list[str]:
    """Names of the receivers checkpoint `path` has readers for, from its config.json alone (no model loads;
    read as from_pretrained reads it, defaults filled in)."""
    return [spec.name for spec in read_config(resolve_checkpoint(path)).receivers]


def load_trained(path: str | Path, receivers: dict[str, Receiver] | None = None) -> LatentWire:
    """The trained model of checkpoint `path` (a directory, a training out_dir or "default") in eval mode;
    `receivers` (by name) are loaded if absent (and added to the dict, when one is given)."""
    return LatentWire.from_pretrained(path, receivers)
