"""Paired F1 difference of two rows over the questions both answered, per receiver, with a bootstrap 95%
interval, and the ratio of their mean F1 with its interval from the same resamples
(latentwire.eval.analysis.paired_difference); the rows may come from two runs.

    python bench/paired.py runs/reader-curve-k2_L8/step-000100/predictions.jsonl:latent_k:2 \
        runs/reader-curve-k2/step-000100/predictions.jsonl:latent_k:2 --results bench/results/paired.json

A row is FILE:METHOD[:K] (K: the row's k, for token readers). Prints a table; with --results, adds the
comparison to that JSON file (a list, kept across calls). With --bar R (a ratio bar such as 0.9), also the share
of resamples whose ratio a / b falls below R.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from latentwire.atomic import atomic_write_bytes
from latentwire.eval.analysis import paired_difference
from latentwire.provenance import code_commit


def fail(message: str) -> None:
    """A one-line error naming what is wrong, exit code 2."""
    print(f"paired.py: {message}", file=sys.stderr)
    sys.exit(2)


def row_predictions(spec: str, label: str) -> list[dict]:
    """FILE:METHOD[:K] -> that row's prediction records, relabelled as method `label`."""
    path, method, *k = spec.split(":")
    if not Path(path).is_file() or len(k) > 1:
        fail(f"{spec!r}: expected FILE:METHOD[:K] with an existing predictions file")
    want = int(k[0]) if k else None
    records = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return [{**r, "method": label} for r in records if r["method"] == method and r.get("k") == want]


def ratio_text(d: dict) -> str:
    """The ratio a / b, its interval and the share of resamples below the bar, as far as they are defined."""
    if d["ratio"] is None:
        return "a / b undefined (b's F1 is 0)"
    text = f"a / b = {d['ratio']:.3f}"
    if d["ratio_ci95"] is not None:
        text += f"  95% {d['ratio_ci95'][0]:.3f} to {d['ratio_ci95'][1]:.3f}"
    if "below_bar" in d:
        text += f"  below the bar in {100 * d['below_bar']:.1f}% of resamples"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", help="FILE:METHOD[:K], the row whose F1 comes first")
    parser.add_argument("b", help="FILE:METHOD[:K], the row subtracted")
    parser.add_argument("--results", help="a JSON file to add this comparison to")
    parser.add_argument("--bar", type=float, help="a bar on the ratio a / b: report the resamples below it")
    args = parser.parse_args()
    if args.bar is not None and not args.bar > 0:
        fail(f"--bar must be a ratio above 0, got {args.bar}")
    a, b = row_predictions(args.a, "a"), row_predictions(args.b, "b")
    if not a or not b:
        fail(f"no predictions for {args.a if not a else args.b}")
    out = paired_difference(a + b, "a", "b", bar=args.bar)
    for receiver, d in out.items():
        print(f"{receiver:8s} n={d['n']:4d}  a - b = {d['mean']:+.3f}  95% {d['ci95'][0]:+.3f} to {d['ci95'][1]:+.3f}"
              f"  {ratio_text(d)}")
    if args.results:
        path = Path(args.results)
        done = json.loads(path.read_text()) if path.is_file() else []
        done.append({"a": args.a, "b": args.b, "by_receiver": out, "code_commit": code_commit()})
        atomic_write_bytes(path, json.dumps(done, indent=1).encode())


if __name__ == "__main__":
    main()
