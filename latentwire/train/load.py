"""Load a trained LatentWire checkpoint for evaluation or serving."""
from __future__ import annotations

from pathlib import Path

from latentwire.config import ConfigError, config_from_dict
from latentwire.llm.loader import Receiver
from latentwire.system import LatentWire
from latentwire.train.checkpoint import CheckpointError, latest_checkpoint, load_model_weights, read_json


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory from itself or from a training out_dir (its newest checkpoint)."""
    if not path:
        raise CheckpointError("no checkpoint given: set checkpoint=<dir>")
    path = Path(path)
    if (path / "state.json").is_file():
        return path
    newest = latest_checkpoint(path)
    if newest is None:
        raise CheckpointError(f"no checkpoint in {path}")
    return newest


def load_trained(path: str | Path, receivers: dict[str, Receiver] | None = None) -> LatentWire:
    """The trained model of checkpoint `path` in eval mode; `receivers` (by name) are loaded if absent."""
    from latentwire.train.trainer import setup

    folder = resolve_checkpoint(path)
    try:
        config = config_from_dict(read_json(folder / "config.json"))
    except ConfigError as error:
        raise CheckpointError(f"{folder / 'config.json'}: {error}") from None
    system, loaded, builders = setup(config, receivers)
    if receivers is not None:
        receivers.update(loaded)
    load_model_weights(system, folder)
    state = read_json(folder / "state.json")
    if state.get("checkpoint_id") and state["checkpoint_id"] != system.checkpoint_id().hex():
        raise CheckpointError(f"{folder / 'model.safetensors'} does not match the checkpoint id in state.json "
                              "(tampered or mixed files)")
    system.attach(loaded, builders)
    system.eval()
    return system
