"""The training loop (accelerate): one latent, every receiver, one optimizer step at a time.

Resumes from the newest checkpoint in train.out_dir after a kill: the example order is a pure
function of (seed, step), so a resumed run sees exactly the batches an uninterrupted one would.
"""
from __future__ import annotations

import functools
import json
import math
import random
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm import tqdm

from latentwire.atomic import trim_partial_line
from latentwire.config import Config
from latentwire.data.loaders import load_examples
from latentwire.errors import CheckpointError, TrainingError
from latentwire.llm.loader import Receiver
from latentwire.precision import autocast, mixed_precision, resolve_run
from latentwire.system import LatentWire, build_system
from latentwire.train.checkpoint import (
    latest_checkpoint,
    load_model_weights,
    load_optimizer,
    read_json,
    remove_partial_writes,
    resolve_checkpoint,
    save_checkpoint,
)
from latentwire.train.features import TrainItem, items_key, load_items, save_items
from latentwire.train.objective import batch_loss, shuffle_test_bits


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
    """A few lines on what a run skipped: bad data rows, examples that failed alignment, non-finite steps (a run
    of train.steps = 0 reads no data: one line saying so)."""
    out_dir = Path(out_dir)
    if not (out_dir / "data_report.json").is_file():
        return "data: none read (no training step run)"
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


def _shuffle_test(system, items: list[TrainItem], step: int, config: Config) -> dict:
    """bits_specific / bits_prior per receiver on the examples of step `step` (at least 2 of them)."""
    batch = micro_batch(items, step, 0, config)
    if len(batch) < 2:
        batch = batch + micro_batch(items, step + 1, 0, config)
    was_training = system.training
    system.eval()
    try:
        return shuffle_test_bits(system, batch)
    finally:
        system.train(was_training)


def _append(path: Path, record: dict) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def training_items(config: Config, system: LatentWire, accelerator: Accelerator, out: Path,
                   progress: bool, aux: bool = False) -> tuple[list[TrainItem], dict, dict]:
    """(items, what building them skipped, what loading the data skipped): the training items of
    loss.objective (`aux`: of loss.aux_objective), built once by the main process into out/features (an aux
    task's into out/features-<task>; reused while their key matches) and read by all."""
    t = config.train
    objective = config.loss.aux_objective if aux else config.loss.objective
    examples, data_report = load_examples(config.data.source, config.data.path, "train", t.n_train,
                                          t.seed, config.data.max_context_chars)
    as_config = config.to_dict()
    as_config["loss"] = {**as_config["loss"], "objective": objective}
    key = items_key(as_config)
    cache = out / (f"features-{objective}" if aux else "features")
    with accelerator.main_process_first(), system.training_task(objective):   # the main process builds the
        items = load_items(examples, cache, key)                               # cache; the others read it
        if items is None:
            items, report = system.task.build_items(examples, system, config,
                                                    progress=progress and accelerator.is_main_process)
            item_report = report.as_dict()
            if accelerator.is_main_process:
                save_items(items, cache, key, item_report)
        else:
            item_report = json.loads((cache / "items.json").read_text())["report"]
    if not items:
        raise TrainingError(f"no usable training examples: {item_report['skipped']}")
    return items, item_report, data_report.as_dict()


def make_optimizer(system: LatentWire, config: Config) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters, after freezing those under train.freeze's prefixes and those of
    receivers train.readers leaves out (LatentWire.receiver_parameters: its reader, its LoRA)."""
    t = config.train
    untrained = {id(p) for name in system.receiver_names if name not in system.trained
                 for p in system.receiver_parameters(name)}
    for name, p in system.named_parameters():
        if any(name.startswith(prefix) for prefix in t.freeze) or id(p) in untrained:
            p.requires_grad_(False)
    trainable = [p for p in system.parameters() if p.requires_grad]
    if not trainable:
        raise TrainingError(f"train.freeze={t.freeze} leaves nothing to train")
    return torch.optim.AdamW(trainable, lr=t.lr, weight_decay=t.weight_decay)


def restore(system: LatentWire, optimizer: torch.optim.Optimizer | None, out: Path, config: Config) -> tuple[int, int]:
    """(step, bad steps) to go on from: the newest checkpoint in `out` (weights and optimizer state), else the
    step and weights of train.continue_from (an exported state), else step 0 from train.init_from's weights
    (a pretraining stage) or from the initialisation."""
    resume = latest_checkpoint(out)
    if resume is None and config.train.continue_from:           # an exported state: weights and step
        exported = resolve_checkpoint(config.train.continue_from)
        state = read_json(exported / "state.json")
        check_same_reading(exported, config)
        load_model_weights(system, exported)
        return state["step"], state.get("bad_steps", 0)
    if resume is None:
        if config.train.init_from:
            load_model_weights(system, resolve_checkpoint(config.train.init_from), config.train.init_new_lora,
                               tuple(config.train.init_fresh))
        return 0, 0
    state = read_json(resume / "state.json")
    load_model_weights(system, resume)
    if optimizer is not None:
        load_optimizer(optimizer, resume, state["param_groups"])
    return state["step"], state.get("bad_steps", 0)


READING_FIELDS = ("kind", "merge", "input")
"""encoder fields a continued run must share with the state it continues (the same tensors read another way
would load silently)."""


def check_same_reading(state: Path, config: Config) -> None:
    """CheckpointError unless the exported `state` (its config.json) reads as `config` does (READING_FIELDS)."""
    saved = read_json(state / "config.json").get("encoder", {})
    differ = [f"encoder.{name}={saved.get(name)!r} there, {getattr(config.encoder, name)!r} here"
              for name in READING_FIELDS if saved.get(name) != getattr(config.encoder, name)]
    if differ:
        raise CheckpointError(f"train.continue_from={state} was trained otherwise: {'; '.join(differ)} (a "
                              "continuation reads as its run did; a new stage uses train.init_from)")


def compute_precision(accelerator: Accelerator, config: Config):
    """The autocast of a training forward: bfloat16 by torch.autocast (accelerate's process-wide setting would
    refuse a second run of another precision in the same process), float16 through accelerate (its loss
    scaling), none for float32."""
    if mixed_precision(config) == "bf16":
        return autocast("bfloat16", accelerator.device.type)
    return accelerator.autocast()


def reading_k(ks: list[int], seed: int, step: int) -> int:
    """Tokens a receiver position reads in step `step` (token packets): drawn from `ks`, a function of
    (seed, step) so that a resumed run draws as an uninterrupted one would."""
    return ks[0] if len(ks) == 1 else random.Random(seed * 104_729 + step).choice(ks)


def _reading(model) -> dict:
    """How a token reader read this step's packets ({"k", "focus"}; {} for other encoders)."""
    return {"k": model.k, "focus": model.focus} if model.encoder.carries_tokens else {}


def reading_focus(share: float, seed: int, step: int) -> bool:
    """Whether step `step` reads token packets at two resolutions: true on a `share` of the steps, a function
    of (seed, step) as reading_k is."""
    return _drawn(share, seed * 15_485_863 + step)


def _drawn(share: float, key: int) -> bool:
    """Whether the draw seeded by `key` falls in the first `share` of [0, 1) (never when share is 0)."""
    return share > 0 and random.Random(key).random() < share


def step_task(config: Config, step: int) -> str:
    """The training task of step `step`: loss.aux_objective on a loss.aux_share of the steps, else
    loss.objective; a function of (seed, step) as reading_k is."""
    loss = config.loss
    aux = bool(loss.aux_objective) and _drawn(loss.aux_share, config.train.seed * 32_452_843 + step)
    return loss.aux_objective if aux else loss.objective


def optimizer_step(system, optimizer, accelerator: Accelerator, items: dict[str, list[TrainItem]], step: int,
                   config: Config) -> tuple[float, dict, float, bool]:
    """One optimizer step over train.grad_accum micro-batches of the step's task (`items`: task -> its
    training items): (loss, its parts, gradient norm, whether the update was applied: a non-finite loss or
    gradient skips it)."""
    t = config.train
    torch.manual_seed(t.seed * 7919 + step)
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(step, config)
    model = getattr(system, "module", system)
    task = step_task(config, step)
    task_ks = config.loss.aux_ks if task == config.loss.aux_objective else config.loss.ks
    model.k = reading_k(task_ks or config.encoder.ks, t.seed, step)
    marked = config.encoder.focus and items[task][0].features.dim() == 2 and items[task][0].features.shape[1] > 1
    model.focus = model.k > 1 and reading_focus(config.encoder.focus_share if marked else 0.0, t.seed,
                                                step)   # (at k = 1 both readings agree; span items have no marks)
    parts: dict[str, float] = {}
    total = 0.0
    for micro in range(t.grad_accum):
        batch = micro_batch(items[task], step, micro, config, accelerator.process_index, accelerator.num_processes)
        with compute_precision(accelerator, config), model.training_task(task):
            loss, parts = batch_loss(system, batch, config.loss)
        accelerator.backward(loss / t.grad_accum)
        total += loss.item() / t.grad_accum
    norm = float(accelerator.clip_grad_norm_(system.parameters(), t.clip))
    finite = math.isfinite(total) and math.isfinite(norm)
    if finite:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total, parts, norm, finite


def save(out: Path, step: int, model: LatentWire, optimizer, bad_steps: int, config: Config) -> Path:
    """Checkpoint `step` of `model` (with the optimizer state, when there is one)."""
    return save_checkpoint(out, step, model, optimizer, {"bad_steps": bad_steps,
                                                          "checkpoint_id": model.checkpoint_id().hex()},
                           config.to_dict())


def initial_checkpoint(config: Config, receivers: dict[str, Receiver] | None = None) -> Path:
    """train.steps = 0: the model as it starts (train.init_from's weights, or the initialisation) written as
    checkpoint step-000000 of train.out_dir, unless one exists there; returns the newest checkpoint."""
    out = Path(config.train.out_dir)
    if latest_checkpoint(out) is None:
        system = build_system(config, receivers)
        restore(system, None, out, config)
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
        save(out, 0, system, make_optimizer(system, config), 0, config)
    return latest_checkpoint(out)


def train(config: Config, progress: bool = True, receivers: dict[str, Receiver] | None = None,
          stop_after: int | None = None) -> Path:
    """Train per `config`; returns the newest checkpoint directory. `stop_after` ends early (tests)."""
    t, out = config.train, Path(config.train.out_dir)
    if t.steps == 0:
        return initial_checkpoint(config, receivers)
    resolve_run(config, "cuda" if torch.cuda.is_available() else "cpu")
    accelerator = Accelerator(mixed_precision="fp16" if mixed_precision(config) == "fp16" else "no")
    system = build_system(config, receivers, accelerator.device)
    system.trained = config.train.readers or system.receiver_names    # a loaded model reads with every reader
    main = accelerator.is_main_process
    out.mkdir(parents=True, exist_ok=True)
    if main:
        remove_partial_writes(out)
        for log in ("log.jsonl", "examples.jsonl"):
            trim_partial_line(out / log)
    items, item_report, data_report = training_items(config, system, accelerator, out, progress)
    by_task = {config.loss.objective: items}
    if config.loss.aux_objective:
        by_task[config.loss.aux_objective] = training_items(config, system, accelerator, out, progress, aux=True)[0]
    optimizer = make_optimizer(system, config)
    step, bad_steps = restore(system, optimizer, out, config)
    system, optimizer = accelerator.prepare(system, optimizer)
    model = accelerator.unwrap_model(system)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    (out / "data_report.json").write_text(json.dumps({"data": data_report, "alignment": item_report}, indent=2))
    if step == 0 and main:   # the shuffled-latent test before any update
        _append(out / "log.jsonl", {"step": 0, **_shuffle_test(model, items, 0, config)})
    bar = tqdm(total=t.steps, initial=step, desc="train", disable=not (progress and main))
    while step < t.steps and (stop_after is None or step < stop_after):
        started = time.perf_counter()
        total, parts, norm, applied = optimizer_step(system, optimizer, accelerator, by_task, step, config)
        bad_steps += not applied
        if bad_steps > t.max_bad_steps:
            raise TrainingError(f"stopped: {bad_steps} steps with a non-finite loss or gradient "
                                f"(train.max_bad_steps={t.max_bad_steps})")
        if main:
            _record_examples(out / "examples.jsonl", step, by_task[step_task(config, step)], config,
                             accelerator.num_processes)
        step += 1
        bar.update(1)
        if main and (step % t.log_every == 0 or step == t.steps):
            _append(out / "log.jsonl", {"step": step, "loss": total, "lr": learning_rate(step - 1, config),
                                        "grad_norm": norm, "bad_steps": bad_steps,
                                        "sec_per_step": time.perf_counter() - started, **_reading(model), **parts,
                                        **({"task": step_task(config, step - 1)} if config.loss.aux_objective else {}),
                                        **_shuffle_test(model, items, step, config)})
            bar.set_postfix(loss=f"{total:.3f}")
        if main and (step % t.save_every == 0 or step == t.steps):
            save(out, step, model, optimizer, bad_steps, config)
        accelerator.wait_for_everyone()
    bar.close()
    if main and latest_checkpoint(out) is None:   # continued from an exported state at or past train.steps
        save(out, step, model, optimizer, bad_steps, config)
    return latest_checkpoint(out)
