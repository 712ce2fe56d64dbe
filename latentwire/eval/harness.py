"""Evaluation harness: every receiver x method over the same examples, metrics per design notes §4."""
from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from latentwire.config import Config, save_config
from latentwire.data.examples import QAExample
from latentwire.data.loaders import iter_batches, load_examples
from latentwire.eval.generation import generate_and_score, greedy_decode
from latentwire.eval.methods import METHODS, MethodContext, PromptInput, latent_prompt
from latentwire.eval.report import markdown_table
from latentwire.eval.squad_metrics import best_em_f1
from latentwire.llm.loader import Receiver, load_receiver
from latentwire.prompt import PromptBuilder
from latentwire.shuffle_test import LN2, summarize

ROW_KEYS = ("receiver", "method", "M", "n", "em", "f1", "firsttok1", "firsttok5", "nll", "prompt_tokens",
            "text_bytes", "text_bytes_zstd", "sec_per_example")


@dataclass
class MethodRun:
    """The result of one (receiver, method, M) over all examples."""

    row: dict
    predictions: list[dict] = field(default_factory=list)


def clean_prediction(text: str) -> str:
    """The generated answer up to its first line break, stripped."""
    return text.strip().split("\n")[0].strip()


def _receiver_alone(ctx: MethodContext, spec) -> contextlib.AbstractContextManager:
    """Text and embedding methods run the receiver as the frozen model (LoRA and other features off)."""
    if ctx.features is None or spec.uses_bits:
        return contextlib.nullcontext()
    return ctx.features.plain(ctx.receiver.name)


def run_method(ctx: MethodContext, examples: list[QAExample], method: str, batch_size: int,
               max_new_tokens: int, progress: bool = True, shuffled_f1: bool = False) -> MethodRun:
    """Evaluate one method on `examples`; returns the metrics row and per-example predictions."""
    spec = METHODS[method]
    receiver, builder = ctx.receiver, ctx.builder
    tokenizer = receiver.tokenizer
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else builder.stop_ids[0]
    with _receiver_alone(ctx, spec):
        prompts = [spec.build(e, ctx) for e in examples]
    gold_ids = [builder.answer_ids(p.content, e.answers[0]) for p, e in zip(prompts, examples)]
    order = sorted(range(len(examples)), key=lambda i: prompts[i].length)  # less padding per batch
    budget = ctx.budget if spec.uses_budget else None
    bits = ctx.bits if spec.uses_bits else None
    label = f"{receiver.name}/{method}" + (f"@{budget}" if budget else "") + (f"@{bits}bit" if bits else "")
    records: dict[int, dict] = {}
    prefill = total = 0.0
    features = ctx.features if spec.uses_bits else None
    with _receiver_alone(ctx, spec):
        for index_batch in tqdm(list(iter_batches(order, batch_size)), desc=label, disable=not progress,
                                leave=False):
            out = generate_and_score(receiver, [prompts[i] for i in index_batch],
                                     [gold_ids[i] for i in index_batch], max_new_tokens, builder.stop_ids, pad_id,
                                     features)
            prefill += out.prefill_seconds
            total += out.total_seconds
            for j, i in enumerate(index_batch):
                records[i] = _score(examples[i], prompts[i], gold_ids[i], out.generated[j], out.first_top5[j],
                                    out.answer_nll[j], tokenizer.decode(out.generated[j], skip_special_tokens=True))
    predictions = [records[i] for i in range(len(examples))]
    n = len(predictions)
    mean = lambda key: sum(p[key] for p in predictions) / n  # noqa: E731
    row = {"receiver": receiver.name, "method": method, "M": budget, "bits": bits, "n": n,
           "em": mean("em"), "f1": mean("f1"), "firsttok1": mean("firsttok1"), "firsttok5": mean("firsttok5"),
           "nll": sum(sum(p["nll"]) for p in predictions) / sum(len(p["nll"]) for p in predictions),
           "prompt_tokens": mean("prompt_tokens"), "text_bytes": mean("text_bytes"),
           "text_bytes_zstd": mean("text_bytes_zstd"), "prefill_sec_per_example": prefill / n,
           "sec_per_example": total / n, **diagnostics(prompts, predictions, tokenizer)}
    if spec.uses_bits and n >= 2:
        row.update(shuffle_test(ctx, prompts, gold_ids, [p["nll"] for p in predictions], batch_size, pad_id))
        if shuffled_f1:
            row.update(shuffled_answers(ctx, prompts, examples, max_new_tokens, batch_size, pad_id))
    for p in predictions:
        p.update(receiver=receiver.name, method=method, M=budget, bits=bits)
    return MethodRun(row=row, predictions=predictions)


def shuffle_test(ctx: MethodContext, prompts: list[PromptInput], gold_ids: list[list[int]],
                 own_nll: list[list[float]], batch_size: int, pad_id: int) -> dict[str, float]:
    """The shuffled-latent test on the gold answers (see latentwire.shuffle_test): example i scored
    with its own latent (`own_nll`, nats per token), with example i-1's latent, and with none (each
    keeping its own question text in context-only mode)."""
    n = len(prompts)
    nothing = prompts[0].latent_embeds[:0]
    conditions = {"shuffled": ([latent_prompt(ctx, prompts[(i - 1) % n].latent_embeds, prompts[i].after_ids)
                                for i in range(n)], ctx.features),
                  "none": ([latent_prompt(ctx, nothing, prompts[i].after_ids) for i in range(n)], None)}
    bits = {"own": torch.tensor([sum(x) / LN2 for x in own_nll])}
    for condition, (inputs, features) in conditions.items():
        values = [0.0] * n
        for batch in iter_batches(list(range(n)), batch_size):
            out = generate_and_score(ctx.receiver, [inputs[i] for i in batch], [gold_ids[i] for i in batch], 1,
                                     ctx.builder.stop_ids, pad_id, features)
            for j, i in enumerate(batch):
                values[i] = sum(out.answer_nll[j]) / LN2
        bits[condition] = torch.tensor(values)
    return summarize(bits["own"], bits["shuffled"], bits["none"])


def shuffled_answers(ctx: MethodContext, prompts: list[PromptInput], examples: list[QAExample],
                     max_new_tokens: int, batch_size: int, pad_id: int) -> dict[str, float]:
    """EM/F1 of the answers generated for example i from example i-1's latent (its own question text
    kept in context-only mode): {"em_shuffled", "f1_shuffled"}."""
    n = len(prompts)
    inputs = [latent_prompt(ctx, prompts[(i - 1) % n].latent_embeds, prompts[i].after_ids) for i in range(n)]
    scores = []
    for batch in iter_batches(list(range(n)), batch_size):
        out = greedy_decode(ctx.receiver, [inputs[i] for i in batch], max_new_tokens, ctx.builder.stop_ids, pad_id,
                            ctx.features)
        for j, i in enumerate(batch):
            text = ctx.receiver.tokenizer.decode(out.generated[j], skip_special_tokens=True)
            scores.append(best_em_f1(clean_prediction(text), examples[i].answers))
    return {"em_shuffled": sum(s[0] for s in scores) / n, "f1_shuffled": sum(s[1] for s in scores) / n}


def diagnostics(prompts: list[PromptInput], predictions: list[dict], tokenizer) -> dict:
    """Collapse checks: first generated token histogram (top 5) and, for latents, wire bytes and the
    mean pairwise cosine similarity of latents across examples."""
    firsts = Counter(tokenizer.decode(p["generated_ids"][:1]) for p in predictions)
    out = {"first_token_top5": [[token, count / len(predictions)] for token, count in firsts.most_common(5)]}
    latents = [p.latent.flatten().float() for p in prompts if p.latent is not None]
    if latents:
        unit = torch.nn.functional.normalize(torch.stack(latents), dim=-1)
        similarity = unit @ unit.T
        n = len(latents)
        out["latent_cosine"] = ((similarity.sum() - n) / max(1, n * (n - 1))).item()
        out["wire_bytes"] = sum(p.wire_bytes for p in prompts) / len(prompts)
        slots = prompts[0].latent.shape[0]
        out["seq_compression"] = sum(p.content_tokens for p in prompts) / len(prompts) / slots
        out["wire_compression"] = sum(p.text_bytes / p.wire_bytes for p in prompts) / len(prompts)
        out["wire_compression_zstd"] = sum(p.text_bytes_zstd / p.wire_bytes for p in prompts) / len(prompts)
    return out


def _joint_row(config: Config, system, receivers: dict[str, Receiver], examples: list[QAExample],
               predictions_path: Path) -> dict:
    """Joint rescoring of the receivers' latent answers at the trained bit width."""
    from latentwire.eval.joint import joint_rescoring_row

    bits = config.wire.bits
    answers: dict[str, dict[str, str]] = {}
    with open(predictions_path) as handle:
        for line in handle:
            record = json.loads(line)
            if record["method"] == "latent" and record["bits"] == bits:
                answers.setdefault(record["receiver"], {})[record["id"]] = record["prediction"]
    contexts = {s.name: MethodContext(receivers[s.name], PromptBuilder(receivers[s.name].tokenizer, config.prompt,
                                                                       s.name), bits=bits, system=system)
                for s in config.receivers}
    return joint_rescoring_row(contexts, examples, answers, bits, config.eval.batch_size)


def oracle_rows(predictions_path: Path, rows: list[dict]) -> list[dict]:
    """Per-example oracle over receivers for each latent bit width: the best EM/F1 any receiver got."""
    best: dict[int, dict[str, list[float]]] = {}
    with open(predictions_path) as handle:
        for line in handle:
            record = json.loads(line)
            if record["method"] == "latent":
                slot = best.setdefault(record["bits"], {}).setdefault(record["id"], [0.0, 0.0])
                slot[0], slot[1] = max(slot[0], record["em"]), max(slot[1], record["f1"])
    out = []
    for bits, per_example in sorted(best.items(), reverse=True):
        receivers = sorted({r["receiver"] for r in rows if r["method"] == "latent" and r.get("bits") == bits})
        if len(receivers) < 2:
            continue
        values = list(per_example.values())
        out.append({"receiver": "+".join(receivers), "method": "latent_oracle", "M": None, "bits": bits,
                    "n": len(values), "em": sum(v[0] for v in values) / len(values),
                    "f1": sum(v[1] for v in values) / len(values)})
    return out


def _score(example: QAExample, prompt: PromptInput, gold_ids: list[int], generated: list[int],
           top5: list[int], nll: list[float], text: str) -> dict:
    prediction = clean_prediction(text)
    em, f1 = best_em_f1(prediction, example.answers)
    return {"id": example.id, "prediction": prediction, "generated_ids": generated, "answers": list(example.answers),
            "em": em, "f1": f1, "firsttok1": float(gold_ids[0] == top5[0]), "firsttok5": float(gold_ids[0] in top5),
            "nll": nll, "prompt_tokens": prompt.length, "text_bytes": prompt.text_bytes,
            "text_bytes_zstd": prompt.text_bytes_zstd}


def method_grid(config: Config) -> list[tuple[str, int | None, int | None]]:
    """(method, M, bits) to run: budget methods once per M, latent methods once per wire.eval_bits."""
    unknown = [m for m in config.eval.methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown eval method(s) {unknown}; known: {sorted(METHODS)}")
    return [(m, budget, bits) for m in config.eval.methods
            for budget in (config.eval.budgets if METHODS[m].uses_budget else [None])
            for bits in (config.wire.eval_bits if METHODS[m].uses_bits else [None])]


def code_commit() -> str:
    """The git commit of the code that runs (with +dirty for uncommitted changes), or "unknown"."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head + ("+dirty" if dirty else "")) or "unknown"


def _done_rows(path: Path) -> list[dict]:
    """Rows already written by an earlier, interrupted run of the same out_dir."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill: that row is simply run again
            break
    return rows


def _keep_predictions_of(path: Path, done: set) -> None:
    """Drop predictions of rows that did not finish (a kill between the two writes)."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines()
            if line.strip() and _row_key(line) in done]
    path.write_text("".join(line + "\n" for line in kept))


def _row_key(line: str) -> tuple | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record["receiver"], record["method"], record["M"], record.get("bits")


def agreement(predictions_path: Path, receiver: str, method: str, reference: str = "text") -> float | None:
    """Fraction of examples whose generated ids under `method` equal those under `reference`."""
    generated: dict[str, dict[str, list[int]]] = {method: {}, reference: {}}
    with open(predictions_path) as handle:
        for line in handle:
            record = json.loads(line)
            if record["receiver"] == receiver and record["method"] in generated:
                generated[record["method"]][record["id"]] = record["generated_ids"]
    shared = set(generated[method]) & set(generated[reference])
    if not shared:
        return None
    return sum(generated[method][i] == generated[reference][i] for i in shared) / len(shared)


# config entries that choose which rows run or where they go, not what a row's numbers are
GRID_KEYS = (("eval", "methods"), ("eval", "budgets"), ("wire", "eval_bits"), ("eval", "out_dir"),
             ("eval", "threads"))


def same_run(old: dict, new: dict) -> bool:
    """Whether rows computed under config `old` are valid under `new`: equal but for the method grid
    (and the output folder and thread count)."""
    def strip(config: dict) -> dict:
        config = json.loads(json.dumps(config))
        for section, key in GRID_KEYS:
            config.get(section, {}).pop(key, None)
        return config
    return strip(old) == strip(new)


def evaluate(config: Config, progress: bool = True, receivers: dict[str, Receiver] | None = None) -> list[dict]:
    """Run every receiver x method of `config`; write metrics.json, predictions.jsonl, results.md.

    Rows are appended to `rows.jsonl` as they finish, so a rerun into the same out_dir with the
    same config skips the (receiver, method, M, bits) rows already done; a config that differs only in
    its method grid (methods, budgets, eval_bits) keeps them too and runs only what is new.
    """
    if config.eval.threads:
        torch.set_num_threads(config.eval.threads)
    grid = method_grid(config)
    examples, report = load_examples(config.data.source, config.data.path, config.data.split, config.data.n,
                                     config.data.seed, config.data.max_context_chars)
    out_dir = Path(config.eval.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config_path = out_dir / "config.json"
    if config_path.is_file() and not same_run(json.loads(config_path.read_text()), config.to_dict()):
        for stale in ("rows.jsonl", "predictions.jsonl"):  # another config: start over
            (out_dir / stale).unlink(missing_ok=True)
    save_config(config, config_path)
    rows_path, predictions_path = out_dir / "rows.jsonl", out_dir / "predictions.jsonl"
    rows = _done_rows(rows_path)
    done = {(r["receiver"], r["method"], r["M"], r.get("bits")) for r in rows}
    _keep_predictions_of(predictions_path, done)
    started, commit = time.perf_counter(), code_commit()
    receivers = dict(receivers or {})
    system = None
    if any(METHODS[m].uses_bits for m, _, _ in grid):
        from latentwire.train.load import load_trained
        system = load_trained(config.checkpoint, receivers)
    for spec in config.receivers:
        todo = [(m, b, k) for m, b, k in grid if (spec.name, m, b, k) not in done]
        if not todo:
            continue
        receiver = receivers.get(spec.name) or load_receiver(spec.model, spec.name, spec.dtype)
        receivers[spec.name] = receiver
        builder = PromptBuilder(receiver.tokenizer, config.prompt, receiver.name)
        for method, budget, bits in todo:
            ctx = MethodContext(receiver, builder, budget or 0, bits or 16, system)
            result = run_method(ctx, examples, method, config.eval.batch_size, config.eval.max_new_tokens,
                                progress, config.eval.shuffled_f1)
            result.row["load_seconds"] = receiver.load_seconds
            result.row["code_commit"] = commit
            with open(predictions_path, "a") as handle:
                handle.writelines(json.dumps(p) + "\n" for p in result.predictions)
            with open(rows_path, "a") as handle:
                handle.write(json.dumps(result.row) + "\n")
            rows.append(result.row)
    for row in rows:
        if row["method"] not in ("text", "latent_oracle") and row["M"] is None and row.get("bits") is None:
            row["agree_with_text"] = agreement(predictions_path, row["receiver"], row["method"])
    rows = [r for r in rows if r["method"] not in ("latent_oracle", "latent_joint")]
    rows += oracle_rows(predictions_path, rows)
    joint = config.eval.joint and len(config.receivers) > 1 and config.wire.bits in config.wire.eval_bits
    if joint and system is not None:
        rows.append(_joint_row(config, system, receivers, examples, predictions_path))
    metrics = {"rows": rows, "data": {"source": config.data.source, "split": config.data.split, **report.as_dict()},
               "n_examples": len(examples), "seconds": time.perf_counter() - started}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out_dir / "results.md").write_text(markdown_table(rows) + "\n")
    return rows
