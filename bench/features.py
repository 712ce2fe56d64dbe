"""Feature ablation (issue 4): none, +LoRA, +deep prefix, +latent adapters, +coprocessor and the best
combination, each trained with the same budget on the default pair and evaluated on validation questions.

    python bench/features.py                                    # the full ablation (GPU-sized)
    python bench/features.py --steps 40 --n 100                 # reduced, CPU (about 15 min a config)
    python bench/features.py --merge                            # only collect finished configs

Every config starts from configs/short_run.yaml with train.n_train = steps x batch (every example seen once);
the training items (teacher top-k) do not depend on the features, so the first config builds them and the
others copy them (`--items` names a ready features/ folder instead). Each config runs in its own process (its
peak memory is that process's), into runs/bench-features/<config>/, and is skipped when finished.
Prints a table and writes bench/results/features.json.
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
RUNS = ROOT / "runs" / "bench-features"
SINGLE = ["none", "lora", "deep_prefix", "latent_adapters", "coprocessor"]
TRAIN_BATCH = 4     # configs/short_run.yaml's train.batch_size: each config sees steps x 4 training examples, once
SCHEMA = ("config", "receiver", "n", "steps", "f1", "em", "firsttok1", "nll", "trainable_params", "sec_per_step",
          "peak_mib", "commit")


def overrides_for(name: str, steps: int, n: int) -> list[str]:
    out = RUNS / name
    features = [] if name == "none" else [f"features.{f}.enabled=true" for f in name.split("+")]
    return [f"train.steps={steps}", f"train.out_dir={out / 'train'}", f"train.save_every={max(1, steps // 2)}",
            f"train.log_every={max(1, steps // 8)}", f"train.n_train={steps * TRAIN_BATCH}", f"data.n={n}", "eval.methods=[latent]", "wire.eval_bits=[4]",
            f"eval.out_dir={out / 'eval'}", f"checkpoint={out / 'train'}", *features]


def run_one(name: str, steps: int, n: int, items: str | None) -> None:
    """Train and evaluate one config in this process; writes runs/bench-features/<name>/result.json."""
    from latentwire.config import load_config
    from latentwire.eval.harness import evaluate
    from latentwire.train.trainer import train

    config = load_config(ROOT / "configs" / "short_run.yaml", overrides_for(name, steps, n))
    out = Path(config.train.out_dir)
    if items and not (out / "features").exists():
        out.mkdir(parents=True, exist_ok=True)
        shutil.copytree(items, out / "features")
    started = time.perf_counter()
    checkpoint = train(config)
    train_seconds = time.perf_counter() - started
    from latentwire.train.load import load_trained
    receivers: dict = {}
    trainable = sum(p.numel() for p in load_trained(checkpoint, receivers).parameters() if p.requires_grad)
    rows = evaluate(config, receivers=receivers)
    log = [r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if "sec_per_step" in r]
    timed = [r["sec_per_step"] for r in log[1:]] or [r["sec_per_step"] for r in log]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        import torch
        if torch.cuda.is_available():
            peak = torch.cuda.max_memory_allocated() / 2**20
    except ImportError:
        pass
    result = {"config": name, "steps": steps, "trainable_params": trainable, "train_seconds": train_seconds,
              "sec_per_step": sum(timed) / len(timed), "peak_mib": peak, "rows": rows}
    (RUNS / name / "result.json").write_text(json.dumps(result, indent=2))


def time_one(name: str, steps: int) -> None:
    """Seconds per training step of one config, measured alone (one process, nothing else running):
    `steps` fresh steps from the cached items, median of all but the first -> <name>/timing.json."""
    import statistics

    from latentwire.config import load_config
    from latentwire.train.trainer import train

    out = RUNS / name / "timing"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    shutil.copytree(RUNS / name / "train" / "features", out / "features")
    trained = json.loads((RUNS / name / "result.json").read_text())["steps"]   # same items (n_train) as the run
    overrides = overrides_for(name, trained, 1) + [f"train.steps={steps}", f"train.out_dir={out}",
                                                    "train.log_every=1", f"train.save_every={steps}"]
    config = load_config(ROOT / "configs" / "short_run.yaml", overrides)
    train(config, progress=False)
    seconds = [r["sec_per_step"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())
               if "sec_per_step" in r][1:]
    (RUNS / name / "timing.json").write_text(json.dumps({"steps": steps, "sec_per_step": statistics.median(seconds),
                                                          "all": seconds}, indent=2))
    shutil.rmtree(out)


def merge() -> list[dict]:
    """Rows of every finished config (latent rows per receiver, plus the joint row)."""
    from latentwire.provenance import code_commit
    commit = code_commit()
    rows = []
    for path in sorted(RUNS.glob("*/result.json"), key=lambda p: (p.parent.name != "none", len(p.parent.name))):
        result = json.loads(path.read_text())
        timing = path.parent / "timing.json"
        if timing.exists():   # measured alone, unlike the training run's own timing
            result["sec_per_step"] = json.loads(timing.read_text())["sec_per_step"]
        for row in result["rows"]:
            if row["method"] not in ("latent", "latent_joint"):
                continue
            rows.append({"config": result["config"], "receiver": row["receiver"], "n": row["n"],
                         "steps": result["steps"], "f1": row["f1"], "em": row["em"],
                         "firsttok1": row.get("firsttok1"), "nll": row.get("nll"),
                         "trainable_params": result["trainable_params"], "sec_per_step": result["sec_per_step"],
                         "peak_mib": result["peak_mib"], "latent_cosine": row.get("latent_cosine"),
                         "commit": row.get("code_commit") or commit})
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "features.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def best_combination() -> str:
    """The features whose single run beat `none` on mean answer NLL over receivers (else the single best)."""
    def mean_nll(name: str) -> float:
        rows = json.loads((RUNS / name / "result.json").read_text())["rows"]
        values = [r["nll"] for r in rows if r["method"] == "latent"]
        return sum(values) / len(values)
    base = mean_nll("none")
    scores = {f: mean_nll(f) for f in SINGLE[1:]}
    better = [f for f in SINGLE[1:] if scores[f] < base]
    return "+".join(better) if len(better) > 1 else min(scores, key=scores.get)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150, help="optimizer steps per config (same for all)")
    parser.add_argument("--n", type=int, default=500, help="validation questions evaluated")
    parser.add_argument("--items", help="a features/ folder of cached training items to reuse")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--time-one", help=argparse.SUPPRESS)
    parser.add_argument("--merge", action="store_true", help="only merge finished configs")
    parser.add_argument("--timing", type=int, metavar="STEPS",
                        help="re-measure seconds per step of every finished config alone, STEPS steps each")
    parser.add_argument("--runs", help="run folder (default runs/bench-features)")
    args = parser.parse_args()
    if args.runs:
        global RUNS
        RUNS = Path(args.runs).resolve()
    if args.one:
        return run_one(args.one, args.steps, args.n, args.items)
    if args.timing:
        for path in sorted(RUNS.glob("*/result.json")):
            print(f"== timing {path.parent.name}", flush=True)
            subprocess.run([sys.executable, __file__, "--time-one", path.parent.name, "--steps", str(args.timing),
                            "--runs", str(RUNS)], check=True)
        args.merge = True
    if args.time_one:
        return time_one(args.time_one, args.steps)
    if not args.merge:
        for name in SINGLE + ["best"]:
            if name == "best":
                name = best_combination()
                if (RUNS / name / "result.json").exists():
                    print(f"best combination {name!r} already ran", flush=True)
                    continue
            if (RUNS / name / "result.json").exists():
                continue
            (RUNS / name).mkdir(parents=True, exist_ok=True)
            command = [sys.executable, __file__, "--one", name, "--steps", str(args.steps), "--n", str(args.n),
                       "--runs", str(RUNS)]
            built = RUNS / "none" / "train" / "features"
            items = args.items or (str(built) if name != "none" and built.exists() else None)
            command += ["--items", items] if items else []
            print(f"== {name}", flush=True)
            subprocess.run(command, check=True)
    from latentwire.eval.report import plain_table
    rows = merge()
    print(plain_table(rows, ["config", "receiver", "n", "steps", "f1", "firsttok1", "nll", "trainable_params",
                             "sec_per_step", "peak_mib", "latent_cosine"]))


if __name__ == "__main__":
    main()
