"""Precision quality check (issue 16): does `dtype=auto` answer as float32 does?

    python bench/precision.py                                   # text, 500 validation questions, both receivers
    python bench/precision.py --checkpoint runs/collapse_pairs_qa --methods text latent
    python bench/precision.py --train-logs runs/qa-float32 runs/qa-auto   # + the training-loss check

Each precision is one `latentwire eval` run into runs/bench-precision/<dtype>/ (resumable there). Per
receiver and method: F1 under each precision, their difference (the bar: within 0.01), and the share of
questions whose first generated token is the same (the bar: >= 95%). With --train-logs, the mean training
loss of the last 20 logged steps of two runs (the bar: within 2%). Prints a table, writes
bench/results/precision.json.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).parent
RUNS = HERE.parent / "runs" / "bench-precision"
COLUMNS = ["receiver", "method", "n", "f1_float32", "f1_auto", "f1_difference", "first_token_same", "resolved"]


def run(dtype: str, args) -> Path:
    """One evaluation of the chosen methods in precision `dtype`; its output folder."""
    from latentwire.config import load_config
    from latentwire.eval.harness import evaluate
    out = RUNS / dtype
    overrides = [f"dtype={dtype}", f"data.n={args.n}", f"eval.methods=[{','.join(args.methods)}]",
                 "wire.eval_bits=[4]", "eval.joint=false", "eval.shuffled_f1=false", f"eval.out_dir={out}"]
    overrides += [f"checkpoint={args.checkpoint}"] if args.checkpoint else []
    overrides += [f"receivers={args.receivers}"] if args.receivers else []
    config = load_config(args.config, overrides)
    evaluate(config)
    return out


def compare(folders: dict[str, Path]) -> list[dict]:
    """Per (receiver, method): both F1s, their difference, the share of equal first generated tokens."""
    def predictions(folder: Path) -> dict:
        records = map(json.loads, (folder / "predictions.jsonl").read_text().splitlines())
        return {(r["receiver"], r["method"], r["id"]): r for r in records}
    float32, auto = predictions(folders["float32"]), predictions(folders["auto"])
    resolved = {(r["receiver"], r["method"]): r.get("resolved_dtype")
                for r in json.loads((folders["auto"] / "metrics.json").read_text())["rows"]}
    rows = []
    for receiver, method in sorted({k[:2] for k in float32}):
        shared = [k for k in float32 if k[:2] == (receiver, method) and k in auto]
        f1 = {name: sum(table[k]["f1"] for k in shared) / len(shared) for name, table in
              (("float32", float32), ("auto", auto))}
        same = sum(float32[k]["generated_ids"][:1] == auto[k]["generated_ids"][:1] for k in shared) / len(shared)
        rows.append({"receiver": receiver, "method": method, "n": len(shared), "f1_float32": f1["float32"],
                     "f1_auto": f1["auto"], "f1_difference": f1["auto"] - f1["float32"], "first_token_same": same,
                     "resolved": resolved.get((receiver, method))})
    return rows


def training_losses(logs: list[str]) -> dict:
    """Mean loss of the last 20 logged steps of each run (float32 first, auto second) and their ratio."""
    means = []
    for folder in logs:
        records = [json.loads(line) for line in (Path(folder) / "log.jsonl").read_text().splitlines()]
        losses = [r["loss"] for r in records if "loss" in r][-20:]
        means.append(sum(losses) / len(losses))
    return {"float32": means[0], "auto": means[1], "auto_over_float32": means[1] / means[0], "runs": logs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--methods", nargs="+", default=["text"])
    parser.add_argument("--checkpoint", help="a trained model, for the latent method")
    parser.add_argument("--config", help="a recipe YAML the evaluation starts from (e.g. the checkpoint's)")
    parser.add_argument("--train-logs", nargs=2, metavar=("FLOAT32_RUN", "AUTO_RUN"))
    parser.add_argument("--receivers", help="receivers= override, e.g. smollm2-135m (default: both)")
    args = parser.parse_args()
    from latentwire.eval.report import plain_table
    from latentwire.precision import machine_info
    from latentwire.provenance import code_commit
    rows = compare({dtype: run(dtype, args) for dtype in ("float32", "auto")})
    result = {"machine": machine_info(),
              "commit": code_commit(), "rows": rows,
              "training": training_losses(args.train_logs) if args.train_logs else None}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "precision.json").write_text(json.dumps(result, indent=2) + "\n")
    print(plain_table(rows, COLUMNS))
    if result["training"]:
        print(json.dumps(result["training"]))


if __name__ == "__main__":
    main()
