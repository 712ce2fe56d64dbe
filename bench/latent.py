"""Latent benchmark: evaluate a trained checkpoint at every wire bit width on both receivers.

    python bench/latent.py checkpoint=runs/short_run [section.field=value ...]

Rows (the schema of baselines.json plus bits and wire_bytes) go to bench/results/latent.json.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from latentwire.config import load_config
from latentwire.eval.harness import evaluate
from latentwire.eval.report import markdown_table
from latentwire.eval.schema import LATENT_KEYS

HERE = Path(__file__).parent
SCHEMA = LATENT_KEYS   # the base columns plus bits and wire_bytes (latentwire/eval/schema.py)


def main(overrides: list[str]) -> None:
    config = load_config(HERE.parent / "configs" / "short_run.yaml", overrides)
    rows = evaluate(config)
    out = [{**{k: row.get(k) for k in SCHEMA}, "latent_slots": config.encoder.M, "d_z": config.encoder.d_z,
            "latent_cosine": row.get("latent_cosine"), "first_token_top5": row.get("first_token_top5"),
            "checkpoint": config.checkpoint, "commit": row.get("code_commit")} for row in rows]
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "latent.json").write_text(json.dumps(out, indent=2) + "\n")
    print(markdown_table(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
