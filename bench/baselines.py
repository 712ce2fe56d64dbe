"""Baseline benchmark: text, token_budget (M = 16/32/64), embed_raw/anchor/adapter on both receivers.

    python bench/baselines.py                      # both receivers, one after the other
    python bench/baselines.py --receiver smollm2   # one receiver (run two such processes side by side)
    python bench/baselines.py --merge              # only collect finished rows into the JSON

Each receiver runs into runs/bench-baselines/<receiver>/ and resumes there after a kill. Prints a
table and writes the rows of every finished receiver to bench/results/baselines.json.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from latentwire.config import load_config
from latentwire.eval.harness import evaluate
from latentwire.eval.summary import agreement
from latentwire.eval.report import markdown_table
from latentwire.eval.schema import ROW_KEYS
from latentwire.provenance import code_commit

HERE = Path(__file__).parent
RUNS = HERE.parent / "runs" / "bench-baselines"
SCHEMA = ROW_KEYS   # the base columns of a metrics row (latentwire/eval/schema.py)


def run_receiver(name: str, overrides: list[str]) -> None:
    config = load_config(HERE / "baselines.yaml", overrides)
    config.receivers = [r for r in config.receivers if r.name == name]
    if not config.receivers:
        raise SystemExit(f"unknown receiver {name!r}")
    config.eval.out_dir = str(RUNS / name)
    evaluate(config)


def merge(fallback_commit: str | None = None) -> list[dict]:
    """Rows of every finished receiver; `commit` is the code that produced each row (rows written before
    rows carried it take `fallback_commit`)."""
    head = code_commit()
    rows = []
    for folder in sorted(RUNS.glob("*/")):
        for line in (folder / "rows.jsonl").read_text().splitlines():
            row = json.loads(line)
            if row["method"] in ("embed_raw", "embed_anchor", "embed_adapter"):
                row["agree_with_text"] = agreement(folder / "predictions.jsonl", row["receiver"], row["method"])
            rows.append({**{k: row[k] for k in SCHEMA}, "prefill_sec_per_example": row["prefill_sec_per_example"],
                         "agree_with_text": row.get("agree_with_text"),
                         "commit": row.get("code_commit") or fallback_commit or head})
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "baselines.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--receiver", help="run only this receiver (smollm2 or qwen)")
    parser.add_argument("--merge", action="store_true", help="only merge finished rows")
    parser.add_argument("--commit", help="commit to record for rows that do not carry one")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    if not args.merge:
        names = [args.receiver] if args.receiver else [r.name for r in load_config(HERE / "baselines.yaml").receivers]
        for name in names:
            run_receiver(name, args.overrides)
    print(markdown_table(merge(args.commit)))


if __name__ == "__main__":
    main()
