"""Checkpoints: safetensors + JSON only, written atomically (temporary dir, then rename).

    <out_dir>/checkpoints/step-000200/{model.safetensors, optimizer.safetensors, state.json, config.json}
    <out_dir>/checkpoints/latest      name of the newest complete checkpoint
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from latentwire.atomic import STAGING_PREFIX, atomic_directory
from latentwire.config import Config, config_from_dict
from latentwire.errors import CheckpointError, ConfigError
from latentwire.weights import named_path


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    state = optimizer.state_dict()
    tensors = {f"{index}.{key}": (value if torch.is_tensor(value) else torch.tensor(value)).contiguous()
               for index, entry in state["state"].items() for key, value in entry.items()}
    return tensors, state["param_groups"]


def save_checkpoint(root: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    state: dict, config: dict) -> Path:
    """Write checkpoint `step` under root/checkpoints atomically and point `latest` at it."""
    folder = Path(root) / "checkpoints"
    target = folder / f"step-{step:06d}"
    with atomic_directory(target) as staging:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                  str(staging / "model.safetensors"))
        if optimizer is not None:
            tensors, groups = _optimizer_tensors(optimizer)
            save_file({k: v.cpu() for k, v in tensors.items()}, str(staging / "optimizer.safetensors"))
            state = {**state, "param_groups": groups}
        (staging / "state.json").write_text(json.dumps({**state, "step": step}, indent=2))
        (staging / "config.json").write_text(json.dumps(config, indent=2))
    pointer = folder / ".latest.tmp"
    pointer.write_text(target.name)
    os.replace(pointer, folder / "latest")
    return target


def remove_partial_writes(root: Path) -> int:
    """Delete staging dirs left by a process killed mid-write; returns how many were removed."""
    folder = Path(root) / "checkpoints"
    partial = list(folder.glob(STAGING_PREFIX + "*")) + list(folder.glob(".latest.tmp")) if folder.is_dir() else []
    for path in partial:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    return len(partial)


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint under root/checkpoints, or None."""
    pointer = Path(root) / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    target = pointer.parent / pointer.read_text().strip()
    return target if (target / "state.json").is_file() else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory from itself, from a training out_dir (its newest checkpoint) or from the name of
    weights shipped in the package ("default")."""
    if not path:
        raise CheckpointError("no checkpoint given: set checkpoint=<dir> (or checkpoint=default)")
    path = named_path(path)
    if (path / "state.json").is_file():
        return path
    newest = latest_checkpoint(path)
    if newest is None:
        raise CheckpointError(f"no checkpoint in {path}")
    return newest


def read_json(path: Path) -> dict:
    """A JSON file of a checkpoint, or CheckpointError naming it."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file missing: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"corrupt checkpoint file {path}: {str(error).splitlines()[0]}") from None


def read_config(folder: Path) -> Config:
    """The Config a checkpoint directory's config.json holds (defaults filled in), or CheckpointError naming it."""
    try:
        return config_from_dict(read_json(Path(folder) / "config.json"))
    except ConfigError as error:
        raise CheckpointError(f"{Path(folder) / 'config.json'}: {error}") from None


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file, or CheckpointError naming it (no pickle is ever read)."""
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file missing: {path}") from None
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"corrupt checkpoint file {path}: {str(error).splitlines()[0]}") from None


def load_model_weights(model: torch.nn.Module, folder: Path, new_lora: bool = False,
                       fresh: tuple[str, ...] = ()) -> None:
    """Load model.safetensors into `model`, refusing missing, extra or mis-shaped tensors; with `new_lora`,
    LoRA tensors the file lacks (modules this config adds) keep their initialisation, which leaves the
    receiver unchanged; tensors whose names start with a prefix in `fresh` keep their initialisation and the
    file's tensors under those prefixes are not read."""
    path = Path(folder) / "model.safetensors"
    expected = model.state_dict()
    unused = [prefix for prefix in fresh if not any(k.startswith(prefix) for k in expected)]
    if unused:
        raise CheckpointError(f"train.init_fresh prefix {unused[0]!r} names no tensor of this model "
                              f"(e.g. {next(iter(expected), '')!r})")
    tensors = {k: v for k, v in read_tensors(path).items() if not k.startswith(tuple(fresh))}
    missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    kept = [k for k in missing if k.startswith(tuple(fresh)) or (new_lora and ("lora_A" in k or "lora_B" in k))]
    missing = [k for k in missing if k not in kept]
    wrong = [k for k in expected if k in tensors and tensors[k].shape != expected[k].shape]
    if missing or extra or wrong:
        raise CheckpointError(f"{path} does not fit this model: missing {missing[:3]}, unexpected {extra[:3]}, "
                              f"wrong shape {wrong[:3]}")
    model.load_state_dict(tensors, strict=not kept)


def load_optimizer(optimizer: torch.optim.Optimizer, folder: Path, param_groups: list[dict]) -> None:
    """Restore optimizer state written by save_checkpoint."""
    tensors = read_tensors(Path(folder) / "optimizer.safetensors")
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    try:
        optimizer.load_state_dict({"state": state, "param_groups": param_groups})
    except (ValueError, KeyError) as error:
        raise CheckpointError(f"optimizer state in {folder} does not fit: {error}") from None


def export_state(checkpoint: Path, target: Path, dtype: torch.dtype = torch.bfloat16,
                 ks: list[int] | None = None) -> Path:
    """A compact copy of training checkpoint `checkpoint` to continue from on another machine
    (train.continue_from): its weights in `dtype` without the optimizer state, state.json (step, bad steps)
    and config.json, written atomically into `target`; returns it. With `ks` (some of a token reader's
    encoder.ks), only those k's merges and layer pools are kept and config.json reads those k alone (a run
    that trains k = 2 only need not carry k = 3 and 4's untrained pools)."""
    source = resolve_checkpoint(checkpoint)
    state = read_json(source / "state.json")
    config = read_json(source / "config.json")
    tensors = {k: v.to(dtype) if v.is_floating_point() else v
               for k, v in read_tensors(source / "model.safetensors").items()}
    if ks:
        tensors, config = _only_ks(tensors, config, ks, source)
    with atomic_directory(Path(target)) as staging:
        save_file(tensors, str(staging / "model.safetensors"))
        (staging / "state.json").write_text(json.dumps(
            {"step": state["step"], "bad_steps": state.get("bad_steps", 0), "exported_from": str(source),
             "dtype": str(dtype).removeprefix("torch.")}, indent=2))
        (staging / "config.json").write_text(json.dumps(config, indent=2))
    return Path(target)


MERGE_TENSOR = re.compile(r"\.reader\.(?:layer_)?merges\.(\d+)\.")
"""A token reader's merge or layer pool tensor for k = group(1)."""


def _only_ks(tensors: dict, config: dict, ks: list[int], source: Path) -> tuple[dict, dict]:
    """The tensors without the merges and layer pools of k not in `ks`, and the config reading `ks` alone;
    CheckpointError unless `ks` are some of the token reader's encoder.ks."""
    encoder = config.get("encoder", {})
    run_ks = encoder.get("ks", [])
    if encoder.get("kind") != "token_ids" or not set(ks) <= set(run_ks):
        raise CheckpointError(f"export-state --ks {' '.join(map(str, ks))}: must be some of the k that {source} "
                              f"reads (encoder.ks {run_ks}, encoder.kind {encoder.get('kind')!r}; token_ids only)")
    kept = {name: t for name, t in tensors.items()
            if (found := MERGE_TENSOR.search(name)) is None or int(found.group(1)) in ks}
    return kept, {**config, "encoder": {**encoder, "ks": sorted(set(ks))}}
