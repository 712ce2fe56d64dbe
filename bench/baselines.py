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
import subprocess
from pathlib import Path

from latentwire.config import load_config
from latentwire.eval.harness import agreement, evaluate
from latentwire.eval.report import markdown_table

HERE = Path(__file__).parent
RUNS = HERE.parent / "runs" / "bench-baselines"
SCHEMA = ("receiver", "method", "M", "n", "em", "f1", "firsttok1", "firsttok5", "nll", "prompt_tokens",
          "text_bytes", "text_bytes_zstd", "sec_per_example")


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
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          cwd=HERE).stdout.strip()
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
