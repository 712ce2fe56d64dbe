"""Evaluation harness: every receiver x method over the same examples, metrics per design notes §4."""
from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from latentwire.config import Config
from latentwire.data.examples import QAExample
from latentwire.data.loaders import iter_batches, load_examples
from latentwire.errors import ConfigError
from latentwire.eval.generation import generate_and_score
from latentwire.eval.joint import joint_row
from latentwire.eval.methods import METHODS, SETTINGS, MethodContext, PromptInput
from latentwire.eval.report import markdown_table
from latentwire.eval.rundir import RunFolder, row_key
from latentwire.eval.controls import shuffle_test, shuffled_answers
from latentwire.eval.diagnostics import diagnostics
from latentwire.eval.squad_metrics import best_em_f1, clean_prediction
from latentwire.eval.summary import derived_rows
from latentwire.eval.timing import first_token_timing, folds, summary_ms
from latentwire.eval.wire_costs import build_codings, cost_columns, message_costs
from latentwire.llm.loader import Receiver, load_receiver
from latentwire.precision import receiver_dtype, resolve_run
from latentwire.prompt import PromptBuilder
from latentwire.provenance import code_commit
from latentwire.train.load import load_trained, reader_names



@dataclass
class MethodRun:
    """The result of one (receiver, method, M) over all examples."""

    row: dict
    predictions: list[dict] = field(default_factory=list)


def _receiver_alone(ctx: MethodContext, spec) -> contextlib.AbstractContextManager:
    """Text and embedding methods run the receiver as the frozen model (LoRA and other features off)."""
    if ctx.features is None or spec.trained:
        return contextlib.nullcontext()
    return ctx.features.plain(ctx.receiver.name)


def run_method(ctx: MethodContext, examples: list[QAExample], method: str, batch_size: int,
               max_new_tokens: int, progress: bool = True, shuffled_f1: bool = False,
               codings: dict | None = None, timing_n: int = 0, memo: dict | None = None,
               shuffle: bool = True, prefix_cache: bool = False, fold_weights: bool = False) -> MethodRun:
    """Evaluate one method on `examples`; returns the metrics row and per-example predictions. Each text
    method's message is costed in `codings`; the receiver is timed on the first `timing_n` examples (with its
    prompt prefix in a cache: `prefix_cache`; LoRA folded into its weights: `fold_weights`). A prompt already
    answered in `memo` (the same receiver, example and token ids, or the same latent) is not generated again."""
    spec = METHODS[method]
    with _receiver_alone(ctx, spec):
        prompts = [spec.build(e, ctx) for e in tqdm(examples, desc=f"{ctx.receiver.name}/{method} prompts",
                                                    disable=not progress, leave=False)]   # lm_coded: minutes
    costs = [message_costs(p, codings or {}) for p in prompts]
    gold_ids = [ctx.builder.answer_ids(p.content, e.answers[0]) for p, e in zip(prompts, examples)]
    setting = {column: getattr(ctx, name) if spec.setting == name else None
               for name, column in SETTINGS.items()}
    label = f"{ctx.receiver.name}/{method}" + "".join(f"@{v}" for v in setting.values() if v is not None)
    features = ctx.features if spec.trained else None
    with _receiver_alone(ctx, spec):
        keys = [_memo_key(ctx, e, p, method, setting) for e, p in zip(examples, prompts)]
        memo = {} if memo is None else memo
        reused = sum(k in memo for k in keys)
        records, prefill, total = _generate(ctx, examples, prompts, gold_ids, batch_size, max_new_tokens,
                                            features, label, progress, keys, memo)
        timed, cached = first_token_timing(ctx.receiver, ctx.builder, [p.receive or p for p in prompts[:timing_n]],
                                           features, prefix_cache, fold_weights)
    predictions = [{**records[i], **costs[i], "prompt_digest": keys[i][2]} for i in range(len(examples))]
    row = {"receiver": ctx.receiver.name, "method": method, **setting, "regime": ctx.regime,
           **_means(predictions), "reused": reused,
           "prefill_sec_per_example": prefill / (len(predictions) - reused) if reused < len(predictions) else None,
           "sec_per_example": total / (len(predictions) - reused) if reused < len(predictions) else None, **cost_columns(costs, prompts, spec.coding),
           **_receiver_ms(timed), "prefix_cached_n": cached,
           "weights_folded": bool(timed) and folds(features, fold_weights),
           **(_context_positions(prompts) if spec.trained else {}),
           **({"merge_layer": prompts[0].layer_states.layer} if prompts and prompts[0].layer_states else {}),
           **({"max_position_share": ctx.max_position_share, "leave_out": list(ctx.leave_out)}
              if spec.budgeted and ctx.max_position_share else {}),
           **diagnostics(prompts, predictions, ctx.receiver.tokenizer)}
    if spec.trained and len(predictions) >= 2:
        pad_id = ctx.builder.pad_id
        if shuffle:
            questions, nll = [e.question for e in examples], [p["nll"] for p in predictions]
            row.update(shuffle_test(ctx, prompts, questions, gold_ids, nll, batch_size, pad_id))
        if shuffled_f1:
            row.update(shuffled_answers(ctx, prompts, examples, max_new_tokens, batch_size, pad_id))
    for p in predictions:
        p.update(receiver=ctx.receiver.name, method=method, **setting, regime=ctx.regime)
    return MethodRun(row=row, predictions=predictions)


def _memo_key(ctx: MethodContext, example: QAExample, prompt: PromptInput, method: str, setting: dict) -> tuple:
    """(receiver, example id, digest): what makes two prompts the same question to a receiver, its token ids
    or a latent's method, setting and weights."""
    trained = ctx.system.weights_id() if METHODS[method].trained and ctx.system is not None else None
    layer = getattr(getattr(prompt, "layer_states", None), "layer", None)
    share = ctx.max_position_share if METHODS[method].budgeted else 0
    what = json.dumps(prompt.ids) if prompt.ids is not None else json.dumps([method, *setting.values(), trained]
                                                                             + ([layer] if layer else [])
                                                                             + ([share, *ctx.leave_out] if share
                                                                                else []))
    return ctx.receiver.name, example.id, hashlib.sha1(what.encode()).hexdigest()


MEMO_FIELDS = ("prediction", "generated_ids", "em", "f1", "firsttok1", "firsttok5", "nll", "prompt_tokens")


def memo_from_predictions(path: Path) -> dict:
    """A memo of the answers in an evaluation's predictions.jsonl (those that recorded their prompt digest)."""
    memo = {}
    if Path(path).is_file():
        for line in Path(path).read_text().splitlines():
            record = json.loads(line) if line.strip() else {}
            if "prompt_digest" in record:
                memo[(record["receiver"], record["id"], record["prompt_digest"])] = {
                    "id": record["id"], "answers": record["answers"], **{k: record[k] for k in MEMO_FIELDS}}
    return memo


def _generate(ctx: MethodContext, examples, prompts, gold_ids, batch_size, max_new_tokens, features, label,
              progress, keys: list[tuple], memo: dict) -> tuple[dict[int, dict], float, float]:
    """Greedy answers and answer NLL for every prompt not in `memo` (answered prompts are added to it), batched
    by length: (records by index, prefill s, total s of the prompts generated here)."""
    records = {i: dict(memo[k]) for i, k in enumerate(keys) if k in memo}
    order = sorted((i for i in range(len(examples)) if i not in records), key=lambda i: prompts[i].length)
    prefill = total = 0.0
    for index_batch in tqdm(list(iter_batches(order, batch_size)), desc=label, disable=not progress, leave=False):
        out = generate_and_score(ctx.receiver, [prompts[i] for i in index_batch], [gold_ids[i] for i in index_batch],
                                 max_new_tokens, ctx.builder.stop_ids, ctx.builder.pad_id, features)
        prefill += out.prefill_seconds
        total += out.total_seconds
        for j, i in enumerate(index_batch):
            text = ctx.receiver.tokenizer.decode(out.generated[j], skip_special_tokens=True)
            records[i] = _score(examples[i], prompts[i], gold_ids[i], out.generated[j], out.first_top5[j],
                                out.answer_nll[j], text)
            memo[keys[i]] = dict(records[i])
    return records, prefill, total


def _means(predictions: list[dict]) -> dict:
    """n and the quality means of a row (nll token-weighted)."""
    n = len(predictions)
    mean = lambda key: sum(p[key] for p in predictions) / n  # noqa: E731
    return {"n": n, "em": mean("em"), "f1": mean("f1"), "firsttok1": mean("firsttok1"),
            "firsttok5": mean("firsttok5"),
            "nll": sum(sum(p["nll"]) for p in predictions) / sum(len(p["nll"]) for p in predictions),
            "prompt_tokens": mean("prompt_tokens")}


def _context_positions(prompts: list[PromptInput]) -> dict:
    """A latent row's context_positions, the mean receiver positions given to what the packet carries (M_r),
    and text_context_positions, the mean receiver tokens of the same content as text (what the latent
    replaces: the prompt's content less the question read after it)."""
    held = [0 if p.latent_embeds is None else int(p.latent_embeds.shape[0]) for p in prompts]
    return {"context_positions": sum(held) / len(prompts),
            "text_context_positions": sum(p.content_tokens for p in prompts) / len(prompts)}


def _receiver_ms(seconds: list[float]) -> dict:
    """receiver_ms (median) and receiver_ms_p90 over the timed examples (None when none were timed)."""
    if not seconds:
        return {"receiver_ms": None, "receiver_ms_p90": None, "timed_n": 0}
    summary = summary_ms(seconds)
    return {"receiver_ms": summary["median_ms"], "receiver_ms_p90": summary["p90_ms"], "timed_n": summary["n"]}


def _score(example: QAExample, prompt: PromptInput, gold_ids: list[int], generated: list[int],
           top5: list[int], nll: list[float], text: str) -> dict:
    prediction = clean_prediction(text)
    em, f1 = best_em_f1(prediction, example.answers)
    return {"id": example.id, "prediction": prediction, "generated_ids": generated, "answers": list(example.answers),
            "em": em, "f1": f1, "firsttok1": float(gold_ids[0] == top5[0]), "firsttok5": float(gold_ids[0] in top5),
            "nll": nll, "prompt_tokens": prompt.length}


def method_grid(config: Config) -> list[tuple[str, object]]:
    """(method, setting value or None) to run: a method with a setting once per value of its config list
    (but its `skips`); every method must run in the config's eval.regime."""
    unknown = [m for m in config.eval.methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown eval method(s) {unknown}; known: {sorted(METHODS)}")
    wrong = [m for m in config.eval.methods if config.eval.regime not in METHODS[m].regimes]
    if wrong:
        raise ValueError(f"eval method(s) {wrong} do not run in eval.regime={config.eval.regime}")
    values = {"budget": config.eval.budgets, "bits": config.wire.eval_bits, "sentences": config.eval.sentences,
              "rate": config.eval.rates, "k": config.eval.ks}
    return [(m, value) for m in config.eval.methods
            for value in (values[METHODS[m].setting] if METHODS[m].setting else [None])
            if value not in METHODS[m].skips]


def load_models(config: Config, grid: list, receivers: dict[str, Receiver]):
    """Every receiver of the config, loaded into `receivers` (by name) in the run's precision, and the trained
    model on them when a latent method runs (or a checkpoint is named: it must load). A receiver the checkpoint
    has no reader for is refused before any model loads."""
    trained = bool(config.checkpoint or any(METHODS[m].trained for m, _ in grid))
    if trained:
        names = reader_names(config.checkpoint)
        unread = [spec.name for spec in config.receivers if spec.name not in names]
        if unread:
            raise ConfigError(f"receivers: {config.checkpoint} has readers for {', '.join(names)} "
                              f"only, not for {', '.join(unread)}")
    for spec in config.receivers:
        if spec.name not in receivers:
            receivers[spec.name] = load_receiver(spec.model, spec.name, receiver_dtype(spec, config))
    if not trained:
        return None
    system = load_trained(config.checkpoint, receivers)
    readers = {k for m, k in grid if METHODS[m].setting == "k"}
    if readers and not system.encoder.carries_tokens:
        raise ValueError(f"eval methods latent_k/latent_focus/latent_salient/latent_selected need a token reader; "
                         f"{config.checkpoint} is encoder.kind={system.config.encoder.kind}")
    if any(m == "latent_salient" for m, _ in grid):
        readers = readers | {config.eval.salient_run_k}
    if readers - set(system.config.encoder.ks):
        raise ValueError(f"eval.ks={sorted(readers)}: this reader was trained for encoder.ks="
                         f"{sorted(system.config.encoder.ks)} (latent_salient also reads at eval.salient_run_k)")
    return system


def _missing_rows(config: Config, grid: list, receivers: dict[str, Receiver], system, examples: list[QAExample],
                  done: set, progress: bool, memo: dict, peers: dict) -> Iterator[MethodRun]:
    """Each (receiver, method, setting) of `grid` whose row key is not in `done`, run in turn."""
    commit = code_commit()
    codings, notes = build_codings(config, receivers)
    sender = receivers[config.receivers[0].name]
    for spec in config.receivers:
        receiver = receivers[spec.name]
        builder = PromptBuilder(receiver.tokenizer, config.prompt, receiver.name)
        for method, value in grid:
            setting = METHODS[method].setting
            if (spec.name, method, *(value if setting == name else None for name in SETTINGS)) in done:
                continue
            ctx = MethodContext(receiver, builder, system=system, regime=config.eval.regime, sender=sender,
                                peers=peers, salient_run_k=config.eval.salient_run_k,
                                merge_layer=config.eval.merge_layer,
                                max_position_share=config.eval.max_position_share,
                                leave_out=tuple(config.eval.leave_out),
                                **({setting: value} if setting else {}))
            result = run_method(ctx, examples, method, config.eval.batch_size, config.eval.max_new_tokens,
                                progress, config.eval.shuffled_f1, codings, config.eval.timing_n, memo,
                                config.eval.shuffle_test, config.eval.prefix_cache,
                                config.eval.fold_weights)
            result.row.update(load_seconds=receiver.load_seconds, code_commit=commit, dtype=config.dtype,
                              resolved_dtype=str(receiver.model.dtype).removeprefix("torch."),
                              **({"coding_notes": notes} if notes else {}))
            yield result


def evaluate(config: Config, progress: bool = True, receivers: dict[str, Receiver] | None = None,
             memo: dict | None = None, peers: dict | None = None) -> list[dict]:
    """Run every receiver x method of `config`; write metrics.json, predictions.jsonl, results.md.

    Resumable: a rerun into the same out_dir with the same config (up to its method grid) runs only the
    (receiver, method, M, bits) rows not done yet. Everything that can fail before the first row (the
    grid, the data, the receivers, the checkpoint) is checked before the folder is touched, and a run of
    another config replaces the folder's results only once it has finished (latentwire.eval.rundir).
    A `memo` dict shared between calls (bench/pareto.py's two regimes) answers a prompt already answered
    without generating it again (rows say how many in `reused`); a `peers` dict shares the sender-side work
    (scorers, LLMLingua's pruning, the lm coding) between calls.
    """
    if config.eval.threads:
        torch.set_num_threads(config.eval.threads)
    resolve_run(config)
    grid = method_grid(config)
    examples, report = load_examples(config.data.source, config.data.path, config.data.split, config.data.n,
                                     config.data.seed, config.data.max_context_chars)
    folder = RunFolder(config.eval.out_dir, config.to_dict())
    rows = folder.done_rows()
    done = {row_key(r) for r in rows}
    receivers = {} if receivers is None else receivers     # models loaded here are added (callers reuse them)
    system = load_models(config, grid, receivers)
    folder.open(rows)
    started = time.perf_counter()
    for result in _missing_rows(config, grid, receivers, system, examples, done, progress,
                                {} if memo is None else memo, {} if peers is None else peers):
        folder.append(result.row, result.predictions)
        rows.append(result.row)
    predictions = folder.path / "predictions.jsonl"
    rows = derived_rows(rows, predictions)
    if config.eval.joint and len(config.receivers) > 1 and config.wire.bits in config.wire.eval_bits and system \
            and "latent" in config.eval.methods:    # joint rescoring reads the `latent` rows' answers
        rows.append(joint_row(config, system, examples, predictions))
    metrics = {"rows": rows, "data": {"source": config.data.source, "split": config.data.split, **report.as_dict()},
               "n_examples": len(examples), "seconds": time.perf_counter() - started}
    (folder.path / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (folder.path / "results.md").write_text(markdown_table(rows) + "\n")
    folder.finish()
    return rows
