"""One receiver forward's time against prompt length (batch 1, one thread, the run's precision): the fixed cost
that bounds how much shorter prompts save (issue 18's receiver-time bar).

    python bench/forward_cost.py                  # both default receivers, bfloat16 on CPUs that have it

Median of 7 forwards (prefill, the last position's logits) at each length; a least-squares line ms = a + b * T
per receiver. Prints the table, writes bench/results/forward_cost.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", nargs="+", type=int, default=[8, 30, 60, 90, 120, 160, 220])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--results", default=str(RESULTS / "forward_cost.json"))
    args = parser.parse_args()

    import torch
    from latentwire.atomic import atomic_write_bytes
    from latentwire.config import load_config
    from latentwire.llm.loader import load_receiver
    from latentwire.precision import machine_info, resolve_dtype
    from latentwire.provenance import code_commit

    torch.set_num_threads(1)
    rows = []
    for spec in load_config(None, []).receivers:
        receiver = load_receiver(spec.model, spec.name, resolve_dtype(args.dtype))
        ids = torch.randint(100, 1000, (1, max(args.lengths)), generator=torch.Generator().manual_seed(0))
        times = {}
        with torch.no_grad():
            receiver.model(input_ids=ids[:, :min(args.lengths)], logits_to_keep=1)      # warm-up
            for length in args.lengths:
                seconds = []
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    receiver.model(input_ids=ids[:, :length], logits_to_keep=1)
                    seconds.append(time.perf_counter() - started)
                times[length] = 1000 * statistics.median(seconds)
        slope, fixed = statistics.linear_regression(list(times), list(times.values()))
        rows.append({"receiver": spec.name, "dtype": str(receiver.model.dtype).removeprefix("torch."),
                     "ms_by_length": times, "fixed_ms": fixed, "ms_per_position": slope})
        print(f"{spec.name}: " + " ".join(f"T={t}: {m:.1f} ms" for t, m in times.items())
              + f" | fit {rows[-1]['fixed_ms']:.1f} + {slope:.2f} * T ms")
    result = {"machine": machine_info(), "code_commit": code_commit(), "rows": rows}
    atomic_write_bytes(Path(args.results), (json.dumps(result, indent=2) + "\n").encode())


if __name__ == "__main__":
    main()
