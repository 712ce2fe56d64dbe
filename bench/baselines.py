"""Baseline benchmark: text, token_budget (M = 16/32/64), embed_raw, embed_anchor on both receivers.

    python bench/baselines.py [section.field=value ...]

Resumable (rerun the same command after a kill). Prints a table and writes the rows to
bench/results/baselines.json.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from latentwire.config import load_config
from latentwire.eval.harness import evaluate
from latentwire.eval.report import markdown_table

HERE = Path(__file__).parent
SCHEMA = ("receiver", "method", "M", "n", "em", "f1", "firsttok1", "firsttok5", "nll", "prompt_tokens",
          "text_bytes", "text_bytes_zstd", "sec_per_example")


def main(overrides: list[str]) -> None:
    config = load_config(HERE / "baselines.yaml", overrides)
    rows = evaluate(config)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=HERE).stdout.strip()
    out = [{**{k: row[k] for k in SCHEMA}, "prefill_sec_per_example": row["prefill_sec_per_example"],
            "agree_with_text": row.get("agree_with_text"), "commit": commit} for row in rows]
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "baselines.json").write_text(json.dumps(out, indent=2) + "\n")
    print(markdown_table(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
