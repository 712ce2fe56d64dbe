"""Analyses of finished evaluations, from their per-example predictions (predictions.jsonl records:
receiver, method, id, f1, ...): F1 split by where the gold answer lies in the context, and the paired
difference of two methods over the same questions with a bootstrap interval. Pure functions."""
from __future__ import annotations

import random
import statistics

NOT_IN_CONTEXT = "answer not in context"


def tokens_covered(M: int, tokens_per_slot: int = 1, select: str = "surprise", keep_ratio: float = 1.0) -> int:
    """Leading context tokens a packet of M slots draws on: M * tokens_per_slot, divided by keep_ratio when
    the slots keep a share of the leading tokens (encoder.select=prune)."""
    return round(M * tokens_per_slot / (keep_ratio if select == "prune" else 1))


def answer_token_position(tokenizer, context: str, answers: list[str]) -> int | None:
    """Index of the token of `context` (tokenized without special tokens) in which the earliest occurrence
    of any gold answer starts: the number of tokens that start before it. None when no answer occurs in
    the context."""
    starts = [p for p in (context.find(a) for a in answers) if p >= 0]
    if not starts:
        return None
    offsets = tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)
    return sum(1 for begin, _ in offsets["offset_mapping"] if begin < min(starts))


def answer_region(position: int | None, seen: int, covered: int) -> str:
    """Where an answer starting at token `position` lies: inside the first `seen` tokens ("tokens 0-seen",
    what a context cut to `seen` positions reads), inside what the packet covers beyond that ("tokens
    seen-covered"), later ("tokens covered+"), or NOT_IN_CONTEXT when position is None."""
    if position is None:
        return NOT_IN_CONTEXT
    if position < seen:
        return f"tokens 0-{seen}"
    return f"tokens {seen}-{covered}" if position < covered else f"tokens {covered}+"


def region_f1(predictions: list[dict], regions: dict[tuple[str, str], str]) -> dict[str, dict]:
    """Mean F1 per "receiver/method/region", `regions` mapping (receiver, example id) to a region; each
    value {"n": predictions, "f1": their mean F1}, keys sorted."""
    table: dict[str, tuple[int, float]] = {}
    for p in predictions:
        key = f"{p['receiver']}/{p['method']}/{regions[p['receiver'], p['id']]}"
        n, total = table.get(key, (0, 0.0))
        table[key] = (n + 1, total + p["f1"])
    return {key: {"n": n, "f1": total / n} for key, (n, total) in sorted(table.items())}


def paired_difference(predictions: list[dict], method: str = "latent", baseline: str = "context_budget",
                      draws: int = 2000, seed: int = 0) -> dict[str, dict]:
    """Per receiver, `method` F1 minus `baseline` F1 over the questions both answered: {"n", "mean", "se"
    (standard error of the mean), "ci95" (paired bootstrap 95% interval: `draws` resamples of the
    differences, a generator seeded with `seed` per receiver)}. Receivers with fewer than two paired
    questions are left out."""
    out = {}
    for receiver in sorted({p["receiver"] for p in predictions}):
        by_method: dict[str, dict] = {}
        for p in predictions:
            if p["receiver"] == receiver:
                by_method.setdefault(p["method"], {})[p["id"]] = p["f1"]
        ours, theirs = by_method.get(method, {}), by_method.get(baseline, {})
        diffs = [ours[i] - theirs[i] for i in ours if i in theirs]
        if len(diffs) < 2:
            continue
        rng = random.Random(seed)
        means = sorted(statistics.fmean(rng.choices(diffs, k=len(diffs))) for _ in range(draws))
        out[receiver] = {"n": len(diffs), "mean": statistics.fmean(diffs),
                         "se": statistics.stdev(diffs) / len(diffs) ** 0.5,
                         "ci95": [means[int(0.025 * draws)], means[int(0.975 * draws) - 1]]}
    return out
