"""The training loop (accelerate): one latent, every receiver, one optimizer step at a time.

Resumes from the newest checkpoint in train.out_dir after a kill: the example order is a pure
function of (seed, step), so a resumed run sees exactly the batches an uninterrupted one would.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
import random
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm import tqdm

from latentwire.atomic import trim_partial_line
from latentwire.config import Config
from latentwire.data.loaders import load_examples
from latentwire.encoders import ENCODERS
from latentwire.llm.loader import Receiver, load_receiver
from latentwire.prompt import PromptBuilder
from latentwire.system import LatentWire
from latentwire.train.checkpoint import (latest_checkpoint, load_model_weights, load_optimizer, read_json,
                                         remove_partial_writes, save_checkpoint)
from latentwire.train.features import TrainItem, build_items, items_key, load_items, save_items
from latentwire.train.objective import batch_loss, shuffle_test_bits
from latentwire.train.tasks import build_span_items, task_prompt


class TrainingError(RuntimeError):
    """Training cannot go on (too many non-finite steps, no usable data)."""


def learning_rate(step: int, config: Config) -> float:
    """Linear warm-up to train.lr, then cosine decay to 10% of it at train.steps."""
    t = config.train
    if step < t.warmup:
        return t.lr * (step + 1) / t.warmup
    progress = min(1.0, (step - t.warmup) / max(1, t.steps - t.warmup))
    return t.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def micro_batch(items: list[TrainItem], step: int, micro: int, config: Config, rank: int = 0,
                world: int = 1) -> list[TrainItem]:
    """The examples of micro-batch `micro` of optimizer step `step` (a pure function, for exact resume)."""
    size = config.train.batch_size
    start = ((step * config.train.grad_accum + micro) * world + rank) * size
    batch = []
    for position in range(start, start + size):
        epoch, offset = divmod(position, len(items))
        batch.append(items[epoch_order(len(items), config.train.seed, epoch)[offset]])
    return batch


@functools.lru_cache(maxsize=4)
def epoch_order(n: int, seed: int, epoch: int) -> tuple[int, ...]:
    """The seeded permutation of n training items used in `epoch`."""
    order = list(range(n))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return tuple(order)


def step_examples(items: list[TrainItem], step: int, config: Config, world: int = 1) -> list[str]:
    """Ids of every example optimizer step `step` trains on, over all micro-batches and processes."""
    return [item.example.id for micro in range(config.train.grad_accum) for rank in range(world)
            for item in micro_batch(items, step, micro, config, rank, world)]


def _record_examples(path: Path, step: int, items: list[TrainItem], config: Config, world: int) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps({"step": step + 1, "examples": step_examples(items, step, config, world)}) + "\n")


def examples_trained(path: Path) -> dict[int, list[str]]:
    """step -> example ids from a run's examples.jsonl; a step redone after a kill keeps its last record
    (the earlier one's update died with the process)."""
    steps: dict[int, list[str]] = {}
    if Path(path).is_file():
        for line in Path(path).read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
            steps[record["step"]] = record["examples"]
    return steps


def run_summary(out_dir: Path) -> str:
    """A few lines on what a run skipped: bad data rows, examples that failed alignment, non-finite steps."""
    out_dir = Path(out_dir)
    report = json.loads((out_dir / "data_report.json").read_text())
    data, alignment = report["data"], report["alignment"]
    lines = [f"data: {data['kept']} rows kept, {data['skipped_total']} skipped {data['skipped'] or ''}".rstrip()]
    lines += [f"  skipped: {row}" for row in data.get("first_skips", [])[:5]]
    dropped = alignment.get("skipped_total", 0)
    lines.append(f"training items: {alignment.get('kept')} kept, {dropped} dropped {alignment.get('skipped') or ''}"
                 .rstrip())
    newest = latest_checkpoint(out_dir)
    if newest is not None:
        lines.append(f"non-finite steps skipped: {read_json(newest / 'state.json').get('bad_steps', 0)}")
    return "\n".join(lines)


def _shuffle_test(system, receivers, builders, items: list[TrainItem], step: int, config: Config) -> dict:
    """bits_specific / bits_prior per receiver on the examples of step `step` (at least 2 of them)."""
    batch = micro_batch(items, step, 0, config)
    if len(batch) < 2:
        batch = batch + micro_batch(items, step + 1, 0, config)
    was_training = system.training
    system.eval()
    try:
        return shuffle_test_bits(system, receivers, builders, batch, config.loss)
    finally:
        system.train(was_training)


def make_builders(config: Config, receivers: dict[str, Receiver]) -> dict[str, PromptBuilder]:
    """One prompt builder per receiver for the configured task."""
    return {name: PromptBuilder(r.tokenizer, task_prompt(config), name) for name, r in receivers.items()}


def setup(config: Config, receivers: dict[str, Receiver] | None = None, device: torch.device | None = None):
    """Load receivers, builders and the source LM, build the LatentWire model (untrained)."""
    loaded = dict(receivers or {})
    for spec in config.receivers:
        if spec.name not in loaded:
            loaded[spec.name] = load_receiver(spec.model, spec.name, spec.dtype)
    if device is not None:
        for receiver in loaded.values():
            receiver.model.to(device)
    builders = make_builders(config, loaded)
    source = None
    if ENCODERS[config.encoder.kind].frozen_features:   # the encoder reads a frozen source LM
        source = next((r for r in loaded.values() if r.source == config.encoder.source_model), None)
        if source is not None and config.features.lora.enabled:
            source = copy.deepcopy(source)   # LoRA goes into the receivers; the encoder reads the plain model
        source = source or load_receiver(config.encoder.source_model, "source")
        if device is not None:
            source.model.to(device)
    set_seed(config.train.seed)
    system = LatentWire(config, {s.name: loaded[s.name] for s in config.receivers}, source)
    return system, {s.name: loaded[s.name] for s in config.receivers}, builders


def train(config: Config, progress: bool = True, receivers: dict[str, Receiver] | None = None,
          stop_after: int | None = None) -> Path:
    """Train per `config`; returns the newest checkpoint directory. `stop_after` ends early (tests)."""
    t = config.train
    accelerator = Accelerator(mixed_precision=t.mixed_precision)
    system, receivers, builders = setup(config, receivers, accelerator.device)
    out = Path(t.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if accelerator.is_main_process:
        remove_partial_writes(out)
        for log in ("log.jsonl", "examples.jsonl"):
            trim_partial_line(out / log)
    examples, data_report = load_examples(config.data.source, config.data.path, "train", t.n_train,
                                          t.seed, config.data.max_context_chars)
    key, cache = items_key(config.to_dict()), out / "features"
    with accelerator.main_process_first():  # the main process builds the cache; the others then read it
        items = load_items(examples, cache, key)
        if items is None:
            with contextlib.ExitStack() as alone:  # the text teacher is the frozen receiver, features off
                for name in receivers:
                    alone.enter_context(system.features.plain(name))
                if config.loss.objective == "qa":
                    items, item_report = build_items(examples, system.featurize, receivers, builders, config.loss,
                                                     progress=progress and accelerator.is_main_process)
                else:
                    items, item_report = build_span_items(examples, system.featurize_text, builders, config)
            item_report = item_report.as_dict()
            if accelerator.is_main_process:
                save_items(items, cache, key, item_report)
        else:
            item_report = json.loads((cache / "items.json").read_text())["report"]
    if not items:
        raise TrainingError(f"no usable training examples: {item_report['skipped']}")
    for name, p in system.named_parameters():
        if any(name.startswith(prefix) for prefix in t.freeze):
            p.requires_grad_(False)
    trainable = [p for p in system.parameters() if p.requires_grad]
    if not trainable:
        raise TrainingError(f"train.freeze={t.freeze} leaves nothing to train")
    optimizer = torch.optim.AdamW(trainable, lr=t.lr, weight_decay=t.weight_decay)
    step, bad_steps = 0, 0
    resume = latest_checkpoint(out)
    if resume is None and t.init_from:   # a new run started from another run's weights (e.g. pretraining)
        from latentwire.train.load import resolve_checkpoint
        load_model_weights(system, resolve_checkpoint(t.init_from))
    if resume is not None:
        state = read_json(resume / "state.json")
        load_model_weights(system, resume)
        load_optimizer(optimizer, resume, state["param_groups"])
        step, bad_steps = state["step"], state.get("bad_steps", 0)
    system, optimizer = accelerator.prepare(system, optimizer)
    model = accelerator.unwrap_model(system)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    (out / "data_report.json").write_text(json.dumps({"data": data_report.as_dict(),
                                                      "alignment": item_report}, indent=2))
    if step == 0 and accelerator.is_main_process:   # the shuffled-latent test before any update
        with open(out / "log.jsonl", "a") as handle:
            handle.write(json.dumps({"step": 0, **_shuffle_test(system, receivers, builders, items, 0, config)}) + "\n")
    bar = tqdm(total=t.steps, initial=step, desc="train", disable=not (progress and accelerator.is_main_process))
    while step < t.steps and (stop_after is None or step < stop_after):
        started = time.perf_counter()
        torch.manual_seed(t.seed * 7919 + step)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        parts: dict[str, float] = {}
        total = 0.0
        for micro in range(t.grad_accum):
            batch = micro_batch(items, step, micro, config, accelerator.process_index, accelerator.num_processes)
            with accelerator.autocast():
                loss, parts = batch_loss(system, receivers, builders, batch, config.loss)
            accelerator.backward(loss / t.grad_accum)
            total += loss.item() / t.grad_accum
        norm = accelerator.clip_grad_norm_(system.parameters(), t.clip)
        if math.isfinite(total) and torch.isfinite(torch.as_tensor(norm)).item():
            optimizer.step()
        else:
            bad_steps += 1
            if bad_steps > t.max_bad_steps:
                raise TrainingError(f"stopped: {bad_steps} steps with a non-finite loss or gradient "
                                    f"(train.max_bad_steps={t.max_bad_steps})")
        optimizer.zero_grad(set_to_none=True)
        if accelerator.is_main_process:
            _record_examples(out / "examples.jsonl", step, items, config, accelerator.num_processes)
        step += 1
        bar.update(1)
        if accelerator.is_main_process and (step % t.log_every == 0 or step == t.steps):
            seconds = time.perf_counter() - started
            shuffle = _shuffle_test(system, receivers, builders, items, step, config)
            record = {"step": step, "loss": total, "lr": learning_rate(step - 1, config), "grad_norm": float(norm),
                      "bad_steps": bad_steps, "sec_per_step": seconds, **parts, **shuffle}
            with open(out / "log.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")
            bar.set_postfix(loss=f"{total:.3f}")
        if accelerator.is_main_process and (step % t.save_every == 0 or step == t.steps):
            save_checkpoint(out, step, model, optimizer, {"bad_steps": bad_steps,
                                                          "checkpoint_id": model.checkpoint_id().hex()},
                            config.to_dict())
        accelerator.wait_for_everyone()
    bar.close()
    return latest_checkpoint(out)
