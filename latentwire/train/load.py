"""Load a trained LatentWire checkpoint for evaluation or serving."""
from __future__ import annotations

from pathlib import Path

from latentwire.config import config_from_dict
from latentwire.errors import CheckpointError, ConfigError
from latentwire.llm.loader import Receiver
from latentwire.system import LatentWire, build_system
from latentwire.train.checkpoint import load_model_weights, read_json, resolve_checkpoint

__all__ = ["load_trained", "resolve_checkpoint"]


def load_trained(path: str | Path, receivers: dict[str, Receiver] | None = None) -> LatentWire:
    """The trained model of checkpoint `path` in eval mode; `receivers` (by name) are loaded if absent
    (and added to the dict, when one is given)."""
    folder = resolve_checkpoint(path)
    try:
        config = config_from_dict(read_json(folder / "config.json"))
    except ConfigError as error:
        raise CheckpointError(f"{folder / 'config.json'}: {error}") from None
    config.resolved_dtype = ""   # where it trained says nothing of this machine: resolve `dtype` here
    system = build_system(config, receivers)
    if receivers is not None:
        receivers.update(system.receivers)
    load_model_weights(system, folder)
    state = read_json(folder / "state.json")
    if state.get("checkpoint_id") and state["checkpoint_id"] != system.checkpoint_id().hex():
        raise CheckpointError(f"{folder / 'model.safetensors'} does not match the checkpoint id in state.json "
                              "(tampered or mixed files)")
    system.eval()
    return system
