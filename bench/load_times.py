"""First (GGUF de-quantisation) and second (safetensors cache) load time of each offline receiver.

    python bench/load_times.py

Uses a fresh temporary cache so the first load is a true first load. Writes bench/results/load_times.json.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        os.environ["LATENTWIRE_CACHE"] = cache
        from latentwire.llm.loader import load_receiver
        for name in ("smollm2-135m", "qwen2.5-coder-0.5b"):
            first = load_receiver(name).load_seconds
            second = load_receiver(name).load_seconds
            rows.append({"model": name, "first_load_s": round(first, 2), "second_load_s": round(second, 2)})
            print(f"| {name} | {first:.1f} s | {second:.2f} s |")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "load_times.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
