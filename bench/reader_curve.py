"""Validation F1 of a token reader against its training steps (issue 18): every saved checkpoint of a run,
read at each k uniformly and at two resolutions, on the first --n validation questions, context-only (or in
--regime question_aware, e.g. --methods latent_selected --set eval.max_position_share=0.5).

    python bench/reader_curve.py --run runs/token_reader --config configs/token_reader.yaml --n 100 --every 100 \
        --init runs/token_reader_cont      # its newest checkpoint is step 0: stage 1's weights, before any QA
    python bench/reader_curve.py --run runs/token_reader_k2_L8 --every 25 --ks 2 --methods latent_k \
        --init bench/state/token_reader_k2_L8 --init-step 100   # a run continued from an exported state
    python bench/reader_curve.py --run runs/token_reader_k2_L8 --steps 250 --no-text ...   # one more point
    python bench/reader_curve.py --report          # table, JSON and plot from what has run

Each checkpoint is one `latentwire eval` run into runs/reader-curve/step-<N>/ (resumable: a killed run
continues with the checkpoints and rows not done); `text` is evaluated once beside them as the reference
(--no-text: not, where it was measured elsewhere).
A step folder remembers the sha256 of the weights it read (weights.sha256): rows of other (or unrecorded)
weights at the same step (a run trained again) are moved to stale-<step>-<sha>/ and left out of the report.
Rows to bench/results/reader_curve.json (written atomically), the plot to bench/results/reader_curve.png (F1
against step, one panel per receiver, a line per method and k, text dashed). A run continued on another
machine (train.continue_from) holds only its later steps in its run folders: --keep-earlier keeps the steps an
earlier report of the same --results folder has and these folders lack.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

from latentwire.atomic import atomic_write_bytes
from latentwire.errors import USER_ERRORS

HERE = Path(__file__).parent
RUNS = HERE.parent / "runs" / "reader-curve"
RESULTS = HERE / "results"
COLUMNS = ["receiver", "step", "method", "k", "n", "f1", "em", "firsttok1", "nll", "prompt_tokens", "wire_bytes"]


def checkpoints(run: Path, every: int, steps: list[int] | None = None) -> list[tuple[int, Path]]:
    """(step, dir) of the run's saved checkpoints whose step is a multiple of `every` (and the newest), or,
    with `steps`, those steps alone (ValueError naming a step the run did not save)."""
    found = sorted((int(m.group(1)), p) for p in (run / "checkpoints").glob("step-*")
                   if (m := re.fullmatch(r"step-(\d+)", p.name)))
    if steps:
        missing = sorted(set(steps) - {s for s, _ in found})
        if missing:
            raise ValueError(f"--steps {' '.join(map(str, missing))}: {run} saved no such checkpoint (it has "
                             f"{', '.join(str(s) for s, _ in found) or 'none'})")
        return [(s, p) for s, p in found if s in steps]
    return [(s, p) for i, (s, p) in enumerate(found) if s % every == 0 or i == len(found) - 1]


def newest_checkpoint(run: Path) -> Path | None:
    """The run's newest saved checkpoint dir (None if it has none); `run` itself when it is one (e.g. a state
    written by `latentwire export-state`)."""
    if (run / "model.safetensors").is_file():
        return run
    found = checkpoints(run, every=10**9)
    return found[-1][1] if found else None


def weights_sha(checkpoint: Path) -> str:
    """The sha256 of a checkpoint's model.safetensors (what its rows were read with)."""
    return hashlib.sha256((checkpoint / "model.safetensors").read_bytes()).hexdigest()


def step_folder(runs: Path, step: int, checkpoint: Path) -> Path:
    """runs/step-<step>, its earlier rows moved to stale-<step>-<sha>/ if another checkpoint's weights made them."""
    folder, sha = runs / f"step-{step:06d}", weights_sha(checkpoint)
    seen = folder / "weights.sha256"
    made_by = seen.read_text().strip() if seen.is_file() else "unknown"   # rows without it: weights unknown
    if folder.is_dir() and any(folder.iterdir()) and made_by != sha:
        folder.rename(runs / f"stale-{step:06d}-{made_by[:12]}")
    folder.mkdir(parents=True, exist_ok=True)
    seen.write_text(sha + "\n")
    return folder


def evaluate_step(args, step: int, checkpoint: Path | None, methods: list[str], receivers: dict) -> None:
    """One evaluation of `methods` at `checkpoint` (None: the reference, text alone) into its run folder."""
    from latentwire.config import load_config
    from latentwire.eval.harness import evaluate

    out = step_folder(Path(args.runs), step, checkpoint) if checkpoint else Path(args.runs) / "text"
    overrides = [f"data.n={args.n}", f"eval.methods=[{','.join(methods)}]", f"eval.regime={args.regime}",
                 f"eval.ks=[{','.join(map(str, args.ks))}]", "eval.joint=false", "eval.shuffle_test=false",
                 "eval.shuffled_f1=false", *args.set, f"checkpoint={checkpoint or ''}", f"eval.out_dir={out}"]
    evaluate(load_config(args.config, overrides), receivers=receivers, progress=True)


def report(rows: list[dict], results: Path, references: dict[str, float] | None = None, bar: float = 0.0) -> None:
    """Write <results>/reader_curve.json and reader_curve.png; print the table. `references` (receiver -> F1,
    measured elsewhere) are drawn as levels, with `bar` x each where a bar is given."""
    from latentwire.eval.report import plain_table
    from latentwire.precision import machine_info

    results.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(results / "reader_curve.json", (json.dumps(
        {"machine": machine_info(), "rows": rows, "references": references or {}, "bar": bar},
        indent=2) + "\n").encode())
    print(plain_table(sorted(rows, key=lambda r: (r["receiver"], r["step"] or 0, r["method"], r.get("k") or 0)),
                      COLUMNS))
    plot(rows, results / "reader_curve.png", references or {}, bar)


def plot(rows: list[dict], path: Path, references: dict[str, float], bar: float) -> None:
    """F1 against step, one panel per receiver; a line per (method, k), text as a dashed level, a reference
    (and `bar` x it) as dotted ones."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    receivers = sorted({r["receiver"] for r in rows})
    figure, axes = plt.subplots(1, len(receivers), figsize=(6 * len(receivers), 4), squeeze=False)
    for axis, receiver in zip(axes[0], receivers):
        mine = [r for r in rows if r["receiver"] == receiver]
        for key in sorted({(r["method"], r.get("k")) for r in mine if r["step"] is not None}, key=str):
            line = sorted((r for r in mine if (r["method"], r.get("k")) == key and r["step"] is not None),
                          key=lambda r: r["step"])
            axis.plot([r["step"] for r in line], [r["f1"] for r in line], marker="o", label=f"{key[0]} k={key[1]}")
        for r in (r for r in mine if r["method"] == "text"):
            axis.axhline(r["f1"], color="black", linestyle="--", linewidth=1, label="text")
        axis.set(title=receiver, xlabel="training step", ylabel=f"F1 (validation, n={mine[0]['n']})")
        if receiver in references:
            axis.axhline(references[receiver], color="grey", linestyle=":", label="reference")
            if bar:
                axis.axhline(bar * references[receiver], color="red", linestyle=":", label=f"{bar} x reference")
        axis.set_ylim(0, 1.15 * max([r["f1"] for r in mine] + [references.get(receiver, 0)]))  # from zero
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def earlier_rows(results: Path) -> list[dict]:
    """The rows an earlier report wrote to <results>/reader_curve.json ([] where there is none); ValueError
    naming the file where it is not one."""
    path = results / "reader_curve.json"
    if not path.is_file():
        return []
    try:
        rows = json.loads(path.read_text())["rows"]
    except (ValueError, KeyError, TypeError):
        rows = None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "step" in r for r in rows):
        raise ValueError(f"{path}: not a reader_curve.json (its rows cannot be kept; move it away)")
    return rows


def with_earlier(rows: list[dict], earlier: list[dict]) -> list[dict]:
    """`rows` and the `earlier` rows of checkpoint steps that `rows` lacks (marked "earlier": true): the curve
    of a run continued on another machine, whose run folders hold only the later steps."""
    have = {r["step"] for r in rows}
    return rows + [dict(r, earlier=True) for r in earlier if r["step"] is not None and r["step"] not in have]


def collect(runs: Path) -> list[dict]:
    """Every row the curve's run folders hold (finished or not)."""
    rows = []
    for path in sorted(runs.glob("*/rows.jsonl")):
        if not (path.parent.name == "text" or path.parent.name.startswith("step-")):
            continue                                       # stale-*: another run's weights
        step = int(path.parent.name.split("-")[1]) if path.parent.name.startswith("step-") else None
        rows += [{**json.loads(line), "step": step} for line in path.read_text().splitlines() if line.strip()]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/token_reader", help="the training run (its checkpoints/)")
    parser.add_argument("--config", default="configs/token_reader.yaml")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--init", help="the run (or checkpoint, or exported state) the run started from "
                        "(train.init_from): step 0, or --init-step")
    parser.add_argument("--init-step", type=int, default=0, help="the step --init's weights count as (a run "
                        "continued with train.continue_from from an exported state: that state's step)")
    parser.add_argument("--every", type=int, default=100, help="evaluate the checkpoints at multiples of this step")
    parser.add_argument("--steps", nargs="+", type=int, help="evaluate these saved steps of --run only "
                        "(instead of --every)")
    parser.add_argument("--ks", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--methods", nargs="+", default=["latent_k", "latent_focus"])
    parser.add_argument("--regime", default="context_only", choices=["context_only", "question_aware"])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="more config overrides for every evaluation (e.g. eval.max_position_share=0.5)")
    parser.add_argument("--runs", default=str(RUNS))
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--no-text", action="store_true", help="leave out the text reference (measured elsewhere)")
    parser.add_argument("--reference", nargs="*", default=[], metavar="RECEIVER=F1",
                        help="a level to draw per receiver (measured elsewhere, e.g. the k = 1 reader)")
    parser.add_argument("--bar", type=float, default=0.0, help="also draw this share of each --reference")
    parser.add_argument("--report", action="store_true", help="only report what the run folders hold")
    parser.add_argument("--keep-earlier", action="store_true", help="also report the steps of the --results "
                        "folder's reader_curve.json that the run folders lack (a run continued on another machine)")
    args = parser.parse_args()
    levels = references(args.reference)                      # a malformed one fails before any run
    try:
        earlier = earlier_rows(Path(args.results)) if args.keep_earlier else []
    except ValueError as error:
        print(f"reader_curve.py: {error}", file=sys.stderr)
        sys.exit(2)
    if not args.report:
        try:
            run_curve(args)
        except USER_ERRORS as error:          # a bad --set, a missing or corrupt checkpoint: one line, exit 2
            print(f"reader_curve.py: {error}", file=sys.stderr)
            sys.exit(2)
    report(with_earlier(collect(Path(args.runs)), earlier), Path(args.results), levels, args.bar)


def references(pairs: list[str]) -> dict[str, float]:
    """receiver -> F1 from RECEIVER=F1 words; one line and exit 2 on a malformed one."""
    try:
        return {name: float(value) for name, value in (pair.split("=", 1) for pair in pairs)}
    except ValueError:
        print(f"reader_curve.py: --reference takes RECEIVER=F1 words, got {' '.join(pairs)}", file=sys.stderr)
        sys.exit(2)


def run_curve(args) -> None:
    """The text reference, --init's weights and every selected checkpoint of --run, each evaluated once."""
    receivers: dict = {}
    selected = checkpoints(Path(args.run), args.every, args.steps)      # a wrong --steps fails before any run
    if not args.no_text:
        evaluate_step(args, 0, None, ["text"], receivers)
    start = newest_checkpoint(Path(args.init)) if args.init else None
    if start is not None:
        evaluate_step(args, args.init_step, start, args.methods, receivers)
    for step, path in selected:
        evaluate_step(args, step, path, args.methods, receivers)


if __name__ == "__main__":
    main()
