"""Training logs of runs that draw the same steps (same seed), side by side (issue 18's merge comparison).

    python bench/log_compare.py mixr=runs/token_reader_mixr/log.jsonl rel=runs/token_reader_rel/log.jsonl \
        --task reconstruction --k 3 4

For each logged step that every log has: its task and k, and per run and receiver the answer's (or span's)
bits with the example's own packet and with another example's (the shuffled-packet test); `own < shuffled`
means the positions are read. Runs whose draws differ at a step are refused (they are not comparable).
Prints a markdown table; --json writes the rows.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def read_log(path: Path) -> dict[int, dict]:
    """step -> its log line (lines with a loss; the step-0 line has no draw and is left out)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["step"]: r for r in rows if "loss" in r}


def compare(logs: dict[str, dict[int, dict]], tasks: set[str] | None, ks: set[int] | None) -> list[dict]:
    """One row per step common to every log (filtered by task and k): task, k, <run>/<receiver> own/shuffled."""
    steps = sorted(set.intersection(*(set(log) for log in logs.values())))
    rows = []
    for step in steps:
        lines = {name: log[step] for name, log in logs.items()}
        draws = {(line.get("task"), line.get("k")) for line in lines.values()}
        if len(draws) > 1:
            raise SystemExit(f"step {step}: the runs drew different (task, k): {sorted(map(str, draws))}")
        task, k = draws.pop()
        if (tasks and task not in tasks) or (ks and k not in ks):
            continue
        row = {"step": step, "task": task, "k": k}
        for name, line in lines.items():
            for receiver in sorted({key.split("/")[0] for key in line if key.endswith("/bits_own")}):
                row[f"{name}/{receiver}"] = f"{line[f'{receiver}/bits_own']:.1f} / {line[f'{receiver}/bits_shuffled']:.1f}"
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logs", nargs="+", help="name=path/to/log.jsonl")
    parser.add_argument("--task", nargs="*", help="only these tasks (qa, reconstruction)")
    parser.add_argument("--k", nargs="*", type=int, help="only these k")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    from latentwire.eval.report import plain_table

    named = dict(spec.split("=", 1) for spec in args.logs)
    for name, path in named.items():
        if not Path(path).is_file():
            raise SystemExit(f"log {name}: no file {path}")
    rows = compare({name: read_log(Path(path)) for name, path in named.items()},
                   set(args.task or []), set(args.k or []))
    print(plain_table(rows, list(rows[0]) if rows else ["step"]))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
