"""Training items: frozen encoder features, K-token answer targets and cached teacher distributions.

Everything here is computed once per example, before training, so that a training step costs only
the encoder and the receivers on prefix + M + anchor + K positions.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from latentwire.atomic import atomic_directory
from latentwire.data.examples import LoadReport, QAExample
from latentwire.data.loaders import iter_batches
from latentwire.llm.loader import Receiver
from latentwire.prompt import AlignmentError, PromptBuilder, format_content

if TYPE_CHECKING:   # config -> tasks -> this module: the config is only read here
    from latentwire.config import LossConfig


@dataclass
class TrainItem:
    """One example ready for training."""

    example: QAExample
    features: torch.Tensor                                   # encoder input features [T, ...]
    targets: dict[str, list[int]] = field(default_factory=dict)   # receiver -> first K answer ids
    teacher: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # ids, logits [K, k]


@torch.no_grad()
def teacher_top_k(receiver: Receiver, builder: PromptBuilder, contents: list[str], targets: list[list[int]],
                  K: int, top_k: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Top-k logits of the receiver prompted with the full text at the first K answer positions.

    Rows are [left padding | prompt | answer[:K-1] | right padding], so position k of every row
    predicts answer token k whatever the lengths. Returns per example (ids, logits), each [K, top_k].
    """
    device = receiver.device
    pad = builder.pad_id
    prompts = [builder.prompt_ids(c) for c in contents]
    length = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), length + K - 1), pad, dtype=torch.long, device=device)
    mask = torch.zeros_like(ids)
    for row, (prompt, target) in enumerate(zip(prompts, targets)):
        answer = target[:K - 1]
        ids[row, length - len(prompt):length] = torch.tensor(prompt, device=device)
        ids[row, length:length + len(answer)] = torch.tensor(answer, dtype=torch.long, device=device)
        mask[row, length - len(prompt):length + len(answer)] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    keep = torch.arange(length - 1, length - 1 + K, device=device)
    logits = receiver.model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep,
                            use_cache=False).logits.float()                                # [B, K, V]
    top = logits.topk(top_k, dim=-1)
    return [(top.indices[row].cpu(), top.values[row].cpu()) for row in range(len(prompts))]


def build_items(examples: list[QAExample], featurize, receivers: dict[str, Receiver],
                builders: dict[str, PromptBuilder], loss: LossConfig, batch_size: int = 8,
                progress: bool = True) -> tuple[list[TrainItem], LoadReport]:
    """TrainItems for `examples`; examples whose answer cannot be aligned for a receiver are skipped."""
    report, items = LoadReport(), []
    for example in tqdm(examples, desc="features", disable=not progress, leave=False):
        content = format_content(example.question, example.context)
        targets = {}
        try:
            for name, builder in builders.items():
                ids = builder.answer_ids(content, example.answers[0])
                if loss.answer_end and builder.end_id is None:
                    raise ValueError(f"loss.answer_end: {builder.model_name} has no end-of-answer token "
                                     "(no chat template stop token, no EOS)")
                end = [builder.end_id] if loss.answer_end else []
                targets[name] = (ids + end)[: loss.K]
        except AlignmentError as error:
            report.skip(f"answer alignment: {str(error)[:80]}", example.id)
            continue
        items.append(TrainItem(example, featurize(example.question, example.context), targets))
        report.kept += 1
    if loss.kd_weight > 0:
        for name, receiver in receivers.items():
            for batch in tqdm(list(iter_batches(items, batch_size)), desc=f"teacher {name}", disable=not progress,
                              leave=False):
                contents = [format_content(i.example.question, i.example.context) for i in batch]
                tops = teacher_top_k(receiver, builders[name], contents, [i.targets[name] for i in batch],
                                     loss.K, loss.kd_top_k)
                for item, top in zip(batch, tops):
                    item.teacher[name] = top
    return items, report


def save_items(items: list[TrainItem], folder: Path, key: str, report: dict) -> None:
    """Write items (features, targets, teacher top-k) as safetensors + JSON into `folder` atomically."""
    tensors: dict[str, torch.Tensor] = {}
    for index, item in enumerate(items):
        tensors[f"{index}.features"] = item.features.contiguous()
        for name, target in item.targets.items():
            tensors[f"{index}.{name}.targets"] = torch.tensor(target, dtype=torch.long)
        for name, (ids, logits) in item.teacher.items():
            tensors[f"{index}.{name}.teacher_ids"] = ids.contiguous()
            tensors[f"{index}.{name}.teacher_logits"] = logits.contiguous()
    with atomic_directory(folder) as staging:
        save_file(tensors, str(staging / "items.safetensors"))
        (staging / "items.json").write_text(json.dumps({"key": key, "ids": [i.example.id for i in items],
                                                       "report": report}))


def load_items(examples: list[QAExample], folder: Path, key: str) -> list[TrainItem] | None:
    """Items cached by save_items for the same `key` (None if absent, stale or unreadable)."""
    try:
        meta = json.loads((folder / "items.json").read_text())
        tensors = load_file(str(folder / "items.safetensors"))
    except (OSError, ValueError, SafetensorError):
        return None
    if meta.get("key") != key:
        return None
    by_id = {e.id: e for e in examples}
    items = []
    for index, example_id in enumerate(meta["ids"]):
        if example_id not in by_id:
            return None
        item = TrainItem(by_id[example_id], tensors[f"{index}.features"])
        prefix = f"{index}."
        for name in {k[len(prefix):].split(".")[0] for k in tensors if k.startswith(prefix) and k.count(".") == 2}:
            item.targets[name] = tensors[f"{prefix}{name}.targets"].tolist()
            if f"{prefix}{name}.teacher_ids" in tensors:
                item.teacher[name] = (tensors[f"{prefix}{name}.teacher_ids"], tensors[f"{prefix}{name}.teacher_logits"])
        items.append(item)
    return items


def items_key(config_dict: dict) -> str:
    """A digest of everything the cached items depend on."""
    relevant = {k: config_dict[k] for k in ("receivers", "prompt")}
    relevant["precision"] = config_dict.get("resolved_dtype", "")   # teacher logits and source features
    relevant["encoder"] = {k: config_dict["encoder"].get(k) for k in ("kind", "max_input", "source_model",
                                                                       "source_layer", "input")}
    if config_dict["encoder"].get("focus"):                     # token readers: the focus marks ride along
        relevant["encoder"] |= {k: config_dict["encoder"][k] for k in ("focus", "focus_scorer")}
    relevant["objective"] = {k: config_dict["loss"].get(k) for k in ("objective", "span_tokens")}
    relevant["data"] = {k: config_dict["data"][k] for k in ("source", "path", "max_context_chars")}
    relevant["loss"] = {k: config_dict["loss"].get(k) for k in ("K", "kd_top_k", "answer_end")} | {
        "kd": config_dict["loss"]["kd_weight"] > 0}
    relevant["train"] = {k: config_dict["train"][k] for k in ("n_train", "seed")}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]
