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
                      draws: int = 2000, seed: int = 0, bar: float | None = None) -> dict[str, dict]:
    """Per receiver, `method` F1 minus `baseline` F1 over the questions both answered: {"n", "mean", "se"
    (standard error of the mean), "ci95" (paired bootstrap 95% interval: `draws` resamples of the
    questions, a generator seeded with `seed` per receiver), "ratio" (`method`'s mean F1 over `baseline`'s,
    None where the baseline's is 0) and "ratio_ci95" (the same resamples)}; given `bar`, also "below_bar": the
    share of resamples whose ratio falls below it. Receivers with fewer than two paired questions are left out."""
    out = {}
    for receiver in sorted({p["receiver"] for p in predictions}):
        by_method: dict[str, dict] = {}
        for p in predictions:
            if p["receiver"] == receiver:
                by_method.setdefault(p["method"], {})[p["id"]] = p["f1"]
        ours, theirs = by_method.get(method, {}), by_method.get(baseline, {})
        pairs = [(ours[i], theirs[i]) for i in ours if i in theirs]
        if len(pairs) < 2:
            continue
        out[receiver] = _paired_summary(pairs, random.Random(seed), draws, bar)
    return out


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def _paired_summary(pairs: list[tuple[float, float]], rng: random.Random, draws: int,
                    bar: float | None) -> dict:
    """(F1 of the method, F1 of the baseline) per question -> paired_difference's entry for one receiver."""
    n = len(pairs)
    diffs = [a - b for a, b in pairs]
    deltas, ratios = [], []
    for _ in range(draws):
        sample = rng.choices(range(n), k=n)
        deltas.append(statistics.fmean(diffs[i] for i in sample))
        ratios.append(_ratio(sum(pairs[i][0] for i in sample), sum(pairs[i][1] for i in sample)))
    deltas.sort()
    low, high = int(0.025 * draws), int(0.975 * draws) - 1
    entry = {"n": n, "mean": statistics.fmean(diffs), "se": statistics.stdev(diffs) / n ** 0.5,
             "ci95": [deltas[low], deltas[high]],
             "ratio": _ratio(sum(a for a, _ in pairs), sum(b for _, b in pairs)), "ratio_ci95": None}
    if None not in ratios:
        ratios.sort()
        entry["ratio_ci95"] = [ratios[low], ratios[high]]
        if bar is not None:
            entry["below_bar"] = sum(r < bar for r in ratios) / draws
    return entry
