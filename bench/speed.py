"""Speed benchmark (issue 16): float32 against `dtype=auto` on this machine, in one run.

    python bench/speed.py                         # every measurement, both precisions (~40 min on 2 cores)
    python bench/speed.py --skip main_job         # without the README main job's wall time
    python bench/speed.py --n 8 --steps 3         # smaller

Measured per precision, each in its own process (so that its peak memory and load times are its own):
training step (s/step, batch 8, both receivers) of the context-only QA stage (configs/collapse_pairs_qa.yaml)
and of reconstruction (configs/collapse_pairs.yaml); evaluation throughput (questions/s) of `text` and
`latent` on each receiver; receiver time to the first answer token of `text` and `latent` (batch 1, the
packet's decoding counted); first and second model load; peak resident memory; the README main job's wall
time (`latentwire eval data.n=50`). The latent is the token-pairs QA model as it starts (train.steps=0):
timing does not depend on its weights. Results are the auto / float32 ratios; the CPU model and flags are
recorded. Resumable: each (measurement, precision) is kept in runs/bench-speed/ and skipped when there.
Prints a table and writes bench/results/speed.json.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
RUNS = ROOT / "runs" / "bench-speed"
PRECISIONS = ("float32", "auto")
MEASUREMENTS = ("load", "train_qa", "train_reconstruction", "eval", "first_token", "main_job")
COLUMNS = ["measure", "receiver", "method", "unit", "float32", "auto", "auto_over_float32", "resolved"]


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_load(dtype: str, args) -> list[dict]:
    """First and second load of each default receiver in this process, and the process's peak memory."""
    from latentwire.config import load_config
    from latentwire.llm.loader import load_receiver
    from latentwire.precision import receiver_dtype
    config = load_config(None, [f"dtype={dtype}"])
    rows = []
    for spec in config.receivers:
        times = []
        for _ in range(2):
            started = time.perf_counter()
            load_receiver(spec.model, spec.name, receiver_dtype(spec, config))
            times.append(time.perf_counter() - started)
        rows += [{"measure": "load_first", "receiver": spec.name, "unit": "s", "value": times[0]},
                 {"measure": "load_second", "receiver": spec.name, "unit": "s", "value": times[1]}]
    return rows + [{"measure": "peak_rss_load", "unit": "MiB", "value": _peak_mib()}]


def _train_seconds(recipe: str, dtype: str, args, extra: list[str]) -> float:
    """Median seconds per optimizer step (all but the first) of `recipe` trained from scratch for args.steps."""
    from latentwire.config import load_config
    from latentwire.train.trainer import train
    out = RUNS / f"train-{Path(recipe).stem}-{dtype}"
    config = load_config(ROOT / "configs" / recipe, [f"dtype={dtype}", f"train.steps={args.steps}",
                                                   "train.log_every=1", f"train.save_every={args.steps}",
                                                   f"train.n_train={8 * args.steps}", f"train.out_dir={out}",
                                                   "train.init_from=", *extra])
    train(config, progress=False)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return statistics.median([r["sec_per_step"] for r in log if "sec_per_step" in r][1:])


def measure_train_qa(dtype: str, args) -> list[dict]:
    seconds = _train_seconds("collapse_pairs_qa.yaml", dtype, args, [])
    return [{"measure": "train_step_qa", "receiver": "smollm2+qwen", "unit": "s/step", "value": seconds},
            {"measure": "peak_rss_train_qa", "unit": "MiB", "value": _peak_mib()}]


def measure_train_reconstruction(dtype: str, args) -> list[dict]:
    seconds = _train_seconds("collapse_pairs.yaml", dtype, args, [])
    return [{"measure": "train_step_reconstruction", "receiver": "smollm2+qwen", "unit": "s/step",
             "value": seconds}, {"measure": "peak_rss_train_reconstruction", "unit": "MiB", "value": _peak_mib()}]


def _latent_checkpoint() -> Path:
    """The token-pairs QA model as it starts (its timing is that of any trained one), built once."""
    from latentwire.config import load_config
    from latentwire.train.trainer import train
    out = RUNS / "latent-step0"
    return train(load_config(ROOT / "configs" / "collapse_pairs_qa.yaml",
                             ["train.steps=0", "train.init_from=", f"train.out_dir={out}", "dtype=float32"]))


def measure_eval(dtype: str, args) -> list[dict]:
    """Questions per second of text and latent on each receiver (batches of 8, eval.max_new_tokens=16)."""
    from latentwire.config import load_config
    from latentwire.eval.harness import evaluate
    checkpoint = _latent_checkpoint()
    out = RUNS / f"eval-{dtype}"
    config = load_config(ROOT / "configs" / "collapse_pairs_qa.yaml",
                         [f"dtype={dtype}", f"data.n={args.n}", f"checkpoint={checkpoint}",
                          "eval.methods=[text,latent]", "eval.shuffled_f1=false", "eval.joint=false",
                          f"eval.out_dir={out}"])
    rows = evaluate(config, progress=False)
    return [{"measure": "eval_throughput", "receiver": r["receiver"], "method": r["method"], "unit": "questions/s",
             "value": 1 / r["sec_per_example"]} for r in rows if r["method"] in ("text", "latent")] + \
        [{"measure": "peak_rss_eval", "unit": "MiB", "value": _peak_mib()}]


def measure_first_token(dtype: str, args) -> list[dict]:
    """Median time to the first answer token, alone (batch 1): text from its ids, latent from its packet."""
    from latentwire.config import load_config
    from latentwire.data.loaders import load_examples
    from latentwire.eval.methods import METHODS, MethodContext
    from latentwire.eval.harness import load_models
    from latentwire.eval.timing import first_token_seconds, summary_ms
    config = load_config(ROOT / "configs" / "collapse_pairs_qa.yaml", [f"dtype={dtype}"])
    examples, _ = load_examples("squad", "", "validation", args.n, 0, config.data.max_context_chars)
    receivers: dict = {}
    config.checkpoint = str(_latent_checkpoint())
    system = load_models(config, [("latent", None, 4)], receivers)
    rows = []
    for name, receiver in receivers.items():
        builder = system.builders[name]
        text = [METHODS["text"].build(e, MethodContext(receiver, builder)) for e in examples]
        packets = [(system.encode(e.question, e.context), e.question) for e in examples]
        latent = [lambda p=p, q=q: system.read_packet(p, name, q) for p, q in packets]
        for method, prompts, features in (("text", text, None), ("latent", latent, system.features)):
            first_token_seconds(receiver, builder, prompts[:1], features)   # warm-up
            ms = summary_ms(first_token_seconds(receiver, builder, prompts, features))
            rows.append({"measure": "first_token_ms", "receiver": name, "method": method, "unit": "ms",
                         "value": ms["median_ms"], "p90_ms": ms["p90_ms"]})
    return rows


def measure_main_job(dtype: str, args) -> list[dict]:
    """Wall time of the README main job (`latentwire eval data.n=50`, both receivers) in a fresh process."""
    out = RUNS / f"main-job-{dtype}"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "latentwire.cli", "eval", "--quiet", "data.n=50", f"dtype={dtype}",
                    f"eval.out_dir={out}"], check=True, cwd=ROOT)
    return [{"measure": "main_job_wall", "unit": "s", "value": time.perf_counter() - started}]


def run_one(measure: str, dtype: str, args) -> None:
    from latentwire.precision import resolve_dtype
    from latentwire.provenance import code_commit
    rows = globals()[f"measure_{measure}"](dtype, args)
    for row in rows:
        row.update(dtype=dtype, resolved=resolve_dtype(dtype), commit=code_commit())
    (RUNS / f"{measure}-{dtype}.json").write_text(json.dumps(rows, indent=2))


def merge() -> list[dict]:
    """One row per (measure, receiver, method): both precisions' values and auto / float32."""
    from latentwire.precision import cpu_info
    from latentwire.provenance import code_commit
    table: dict = {}
    for path in sorted(RUNS.glob("*-*.json")):
        for row in json.loads(path.read_text()):
            key = (row["measure"], row.get("receiver"), row.get("method"))
            entry = table.setdefault(key, {"measure": key[0], "receiver": key[1], "method": key[2],
                                           "unit": row["unit"]})
            entry[row["dtype"]] = row["value"]
            entry[f"commit_{row['dtype']}"] = row.get("commit")
            if row["dtype"] == "auto":
                entry["resolved"] = row["resolved"]
    rows = list(table.values())
    for row in rows:
        if row.get("float32") and row.get("auto"):
            row["auto_over_float32"] = row["auto"] / row["float32"]
    model, flags = cpu_info()
    import torch
    meta = {"cpu": model, "bf16_flags": sorted(flags & {"amx_bf16", "avx512_bf16", "amx_tile"}),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "merged_at": code_commit()}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "speed.json").write_text(json.dumps({"machine": meta, "rows": rows}, indent=2) + "\n")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip", nargs="*", default=[], choices=MEASUREMENTS)
    parser.add_argument("--n", type=int, default=32, help="validation questions for eval and first_token")
    parser.add_argument("--steps", type=int, default=4, help="training steps timed (the first is dropped)")
    parser.add_argument("--one", nargs=2, metavar=("MEASURE", "DTYPE"), help=argparse.SUPPRESS)
    parser.add_argument("--merge", action="store_true", help="only merge finished measurements")
    parser.add_argument("--runs", help="run folder (default runs/bench-speed)")
    args = parser.parse_args()
    if args.runs:
        global RUNS
        RUNS = Path(args.runs).resolve()
    RUNS.mkdir(parents=True, exist_ok=True)
    if args.one:
        return run_one(*args.one, args)
    if not args.merge:
        for measure in (m for m in MEASUREMENTS if m not in args.skip):
            for dtype in PRECISIONS:
                if (RUNS / f"{measure}-{dtype}.json").exists():
                    continue
                print(f"== {measure} {dtype}", flush=True)
                subprocess.run([sys.executable, __file__, "--one", measure, dtype, "--n", str(args.n),
                                "--steps", str(args.steps), "--runs", str(RUNS)], check=True)
    from latentwire.eval.report import plain_table
    print(plain_table(merge(), COLUMNS))


if __name__ == "__main__":
    sys.exit(main())
