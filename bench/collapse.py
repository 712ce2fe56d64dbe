"""Collapse benchmark (issue 7): does the latent carry its own example? Each mechanism is trained on
reconstruction of 64-token context spans with the same budget, then measured by the shuffled-latent
test on validation spans (bits_specific per packet bit); optionally (--qa) it is fine-tuned on
context-only QA and compared with a context cut to the same number of receiver positions.

    python bench/collapse.py                               # all mechanisms, reconstruction only
    python bench/collapse.py --mechanisms byte embed_pca --steps 60 --n-spans 64
    python bench/collapse.py --qa --qa-steps 100 --n-qa 500   # + context-only QA (long on CPU)
    python bench/collapse.py --merge                       # only collect finished runs

The recipes are configs/collapse/*.yaml (base.yaml, a <mechanism>.yaml over it each, qa.yaml for the QA
stage); the run folders and steps are set here. Runs go to runs/bench-collapse/<mechanism>/ (resumable: a
finished stage is skipped, a killed training resumes). Prints a table, writes bench/results/collapse.json
and bench/collapse_curves.png (bits_specific against training step, per receiver).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
RUNS = ROOT / "runs" / "bench-collapse"
RECIPES = ROOT / "configs" / "collapse"   # base.yaml, qa.yaml (the QA stage), a <mechanism>.yaml each
STAGES = ("base", "qa")
MECHANISMS = sorted(p.stem for p in RECIPES.glob("*.yaml") if p.stem not in STAGES)
QA_ONLY = {"token_prune+lora"}   # mechanisms whose QA stage starts from the untrained model
COLUMNS = ["receiver", "mechanism", "objective", "n", "M", "d_z", "bits", "wire_bytes", "text_bytes",
           "bits_specific", "bits_prior", "bits_specific_per_packet_bit", "f1", "f1_shuffled", "token_budget_f1",
           "packet_bytes", "within_quarter", "steps", "sec_per_step"]


def _config(mechanism: str, stage: str, steps: int, extra: list[str]):
    """The config of `mechanism`'s stage (reconstruction, or qa<tag> over configs/collapse/qa.yaml), its
    folders under RUNS; `extra` (the command line's overrides) wins."""
    from latentwire.config import load_config
    out = RUNS / mechanism / stage
    files = [RECIPES / f"{mechanism}.yaml"]
    overrides = [f"train.steps={steps}", f"train.out_dir={out}"]
    if stage.startswith("qa"):
        files.append(RECIPES / "qa.yaml")
        start = [] if mechanism in QA_ONLY else [f"train.init_from={RUNS / mechanism / 'reconstruction'}"]
        overrides += [*start, f"checkpoint={out}", f"eval.out_dir={out / 'eval'}"]
    return load_config(files, overrides + extra)


def reconstruction(mechanism: str, steps: int, n_spans: int, extra: list[str]) -> dict:
    """Train `mechanism` on reconstruction and measure it on validation spans (cached in result.json)."""
    from latentwire.data.loaders import load_examples
    from latentwire.eval.spans import span_shuffle_test
    from latentwire.provenance import code_commit
    from latentwire.train.load import load_trained
    from latentwire.train.tasks import span_texts
    from latentwire.train.trainer import train

    done = RUNS / mechanism / "reconstruction.json"
    if done.exists():
        return json.loads(done.read_text())
    config = _config(mechanism, "reconstruction", steps, extra)
    started = time.perf_counter()
    checkpoint = train(config)
    seconds = time.perf_counter() - started
    receivers: dict = {}
    system = load_trained(checkpoint, receivers)   # the model's own builders: a second model would reset the LoRA
    examples, _ = load_examples(config.data.source, config.data.path, "validation", n_spans, 0,
                                config.data.max_context_chars)
    measured = span_shuffle_test(system, receivers, system.builders, examples)
    first = next(iter(receivers.values())).tokenizer
    spans = [span_texts(e.context, first, config.loss.span_tokens, "reconstruction") for e in examples]
    text_bytes = [len(s[0].encode("utf-8")) for s in spans if s]
    log = [json.loads(line) for line in (Path(config.train.out_dir) / "log.jsonl").read_text().splitlines()]
    timed = [r["sec_per_step"] for r in log if "sec_per_step" in r]
    result = {"mechanism": mechanism, "commit": code_commit(), "steps": steps, "train_seconds": seconds,
              "sec_per_step": sum(timed) / len(timed),
              "M": config.encoder.M, "d_z": config.encoder.d_z, "bits": config.wire.bits,
              "text_bytes": sum(text_bytes) / len(text_bytes), "receivers": measured,
              "curve": [{k: v for k, v in r.items() if k == "step" or k.endswith("/bits_specific")} for r in log]}
    done.write_text(json.dumps(result, indent=2))
    return result


def qa(mechanism: str, steps: int, n_qa: int, extra: list[str], tag: str = "") -> dict:
    """Fine-tune the reconstruction run on context-only QA (steps > 0) or carry its weights over as they
    are (steps = 0: the same weights, the QA config's M, written by train() as step 0); F1 of the latent and
    of the context cut to the same number of receiver positions (M), on n_qa validation questions."""
    from latentwire.eval.harness import evaluate
    from latentwire.train.trainer import train

    done = RUNS / mechanism / f"qa{tag}.json"
    if done.exists():
        return json.loads(done.read_text())
    if not any(o.startswith("train.n_train=") for o in extra):   # each training question seen once
        extra = extra + [f"train.n_train={max(steps, 1) * 8}"]      # (base.yaml's batch of 8)
    config = _config(mechanism, f"qa{tag}", max(steps, 1), extra + [f"data.n={n_qa}"])
    config.eval.budgets = [config.encoder.M]   # the context cut to as many receiver positions as slots
    config.train.steps = steps   # 0: train() writes the starting weights (after init_from) as checkpoint step 0
    started = time.perf_counter()
    train(config)
    seconds = time.perf_counter() - started
    rows = evaluate(config)
    result = {"mechanism": mechanism, "steps": steps, "train_seconds": seconds, "M": config.encoder.M,
              "d_z": config.encoder.d_z, "rows": rows, **packet_share(config)}
    done.write_text(json.dumps(result, indent=2))
    return result


def packet_share(config) -> dict:
    """The packet's size against the contexts' UTF-8 bytes on the QA questions (the bar: <= a quarter)."""
    from latentwire.data.loaders import load_examples
    from latentwire.wire.packet import packet_size
    examples, _ = load_examples(config.data.source, config.data.path, config.data.split, config.data.n,
                                config.data.seed, config.data.max_context_chars)
    context_bytes = [len(e.context.encode("utf-8")) for e in examples]
    packet = packet_size(config.encoder.M, config.encoder.d_z, config.wire.bits, config.wire.group_size)
    return {"packet_bytes": packet, "context_bytes_mean": sum(context_bytes) / len(context_bytes),
            "within_quarter": sum(4 * packet <= b for b in context_bytes) / len(context_bytes)}


def answer_regions(mechanism: str, tag: str = "") -> dict:
    """F1 of each QA method split by where the gold answer starts in the context, in each receiver's own
    tokens: inside the first M (what context_budget@M reads), inside what the packet covers beyond that
    (up to M * tokens_per_slot / keep_ratio tokens), or later (neither reads it); and the latent's paired
    F1 difference with context_budget. Cached in qa{tag}_regions.json beside the stage's json."""
    from latentwire.config import load_config
    from latentwire.data.loaders import load_examples
    from latentwire.eval.analysis import (answer_region, answer_token_position, paired_difference, region_f1,
                                          tokens_covered)
    from latentwire.llm.loader import load_receiver

    folder = RUNS / mechanism
    done = folder / f"qa{tag}_regions.json"
    if done.exists():
        return json.loads(done.read_text())
    config = load_config(str(folder / f"qa{tag}" / "config.json"), [])
    e = config.encoder
    seen, covered = e.M, tokens_covered(e.M, e.tokens_per_slot, e.select, e.keep_ratio)
    examples, _ = load_examples(config.data.source, config.data.path, config.data.split, config.data.n,
                                config.data.seed, config.data.max_context_chars)
    predictions = [json.loads(line) for line in
                   (Path(config.eval.out_dir) / "predictions.jsonl").read_text().splitlines()]
    regions: dict = {}
    for spec in config.receivers:
        tokenizer = load_receiver(spec.model, spec.name, spec.dtype).tokenizer
        for example in examples:
            position = answer_token_position(tokenizer, example.context, example.answers)
            regions[spec.name, example.id] = answer_region(position, seen, covered)
    result = {"M": seen, "covered": covered, "f1": region_f1(predictions, regions),
              "latent_minus_budget": paired_difference(predictions, "latent", "context_budget")}
    done.write_text(json.dumps(result, indent=2))
    return result


def merge() -> list[dict]:
    """Rows of every finished stage under RUNS (reconstruction and QA), written to bench/results/collapse.json."""
    from latentwire.provenance import code_commit
    commit = code_commit()
    rows = []
    for folder in sorted(p for p in RUNS.glob("*") if p.is_dir()):
        done = folder / "reconstruction.json"
        result = json.loads(done.read_text()) if done.exists() else {"receivers": {}}
        for receiver, measured in result["receivers"].items():
            rows.append({"receiver": receiver, "mechanism": result["mechanism"], "objective": "reconstruction",
                         "n": measured["n"], "M": result["M"], "d_z": result["d_z"], "bits": result["bits"],
                         "wire_bytes": measured["wire_bytes"], "text_bytes": result["text_bytes"],
                         "bits_specific": measured["bits_specific"], "bits_prior": measured["bits_prior"],
                         "bits_specific_per_packet_bit": measured["bits_specific_per_packet_bit"],
                         "f1": None, "token_budget_f1": None, "steps": result["steps"],
                         "sec_per_step": result["sec_per_step"], "commit": result.get("commit", commit)})
        for path in sorted(p for p in folder.glob("qa*.json") if not p.stem.endswith("_regions")):
            result = json.loads(path.read_text())
            log = folder / path.stem / "log.jsonl"
            timed = [json.loads(line).get("sec_per_step") for line in log.read_text().splitlines()] \
                if log.exists() and result["steps"] > 0 else []
            timed = [t for t in timed if t is not None]
            latent = [r for r in result["rows"] if r["method"] == "latent"]
            budget = {r["receiver"]: r["f1"] for r in result["rows"] if r["method"] == "context_budget"}
            control = folder / path.stem / "eval_shuffled" / "rows.jsonl"   # a later eval.shuffled_f1 pass
            shuffled = {r["receiver"]: r.get("f1_shuffled") for r in map(json.loads, control.read_text().splitlines())
                        if r["method"] == "latent"} if control.exists() else {}
            for row in latent:
                rows.append({"receiver": row["receiver"], "mechanism": result["mechanism"],
                             "objective": "qa_context_only", "n": row["n"], "M": result.get("M"),
                             "d_z": result.get("d_z"),
                             "bits": row["bits"], "wire_bytes": row["wire_bytes"], "text_bytes": row["text_bytes"],
                             "bits_specific": row.get("bits_specific"), "bits_prior": row.get("bits_prior"),
                             "bits_specific_per_packet_bit": None, "f1": row["f1"],
                             "f1_shuffled": row.get("f1_shuffled", shuffled.get(row["receiver"])),
                             "stage": path.stem,
                             "token_budget_f1": budget.get(row["receiver"]),
                             "packet_bytes": result.get("packet_bytes"),
                             "within_quarter": result.get("within_quarter"), "steps": result["steps"],
                             "sec_per_step": sum(timed) / len(timed) if timed else None,
                             "commit": row.get("code_commit") or commit})
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "collapse.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def plot() -> Path | None:
    """bits_specific against step, one line per mechanism and receiver."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    results = [json.loads(p.read_text()) for p in sorted(RUNS.glob("*/reconstruction.json"))]
    if not results:
        return None
    figure, axis = plt.subplots(figsize=(9, 4.5))
    colours = plt.get_cmap("tab10")
    for index, result in enumerate(results):   # a colour per mechanism, a line style per receiver
        names = sorted({k.split("/")[0] for r in result["curve"] for k in r if k != "step"})
        for style, name in zip(["-", "--", ":", "-."] * 4, names):
            points = [(r["step"], r[f"{name}/bits_specific"]) for r in result["curve"] if f"{name}/bits_specific" in r]
            axis.plot(*zip(*points), marker=".", linestyle=style, color=colours(index % 10),
                      label=f"{result['mechanism']} / {name}")
    axis.axhline(0, color="grey", linewidth=0.5)
    axis.set_xlabel("training step")
    axis.set_ylabel("bits_specific on the training batch (bits)")
    axis.set_title("Reconstruction of 64-token spans: information specific to the example")
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    path = HERE / "collapse_curves.png"
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mechanisms", nargs="*", default=list(MECHANISMS), choices=list(MECHANISMS))
    parser.add_argument("--steps", type=int, default=200, help="reconstruction steps (same for every mechanism)")
    parser.add_argument("--n-spans", type=int, default=64, help="validation spans measured")
    parser.add_argument("--qa", action="store_true", help="also fine-tune and evaluate context-only QA")
    parser.add_argument("--qa-steps", type=int, default=200,
                        help="QA fine-tuning steps; 0 evaluates the reconstruction weights as they are")
    parser.add_argument("--qa-overrides", nargs="*", default=[],
                        help="config overrides for the QA stage only (e.g. encoder.M=32)")
    parser.add_argument("--n-qa", type=int, default=500)
    parser.add_argument("--qa-tag", default="", help="suffix of the QA stage's folder and json, to keep several")
    parser.add_argument("--regions", metavar="MECHANISM[:TAG]", nargs="*", default=[],
                        help="finished QA stages to split F1 by where the answer lies in the context")
    parser.add_argument("--merge", action="store_true")
    parser.add_argument("--runs", help="run folder (default runs/bench-collapse)")
    parser.add_argument("overrides", nargs="*", help="extra config overrides for every run")
    args = parser.parse_args()
    if args.runs:
        global RUNS
        RUNS = Path(args.runs)
    for stage in args.regions:
        mechanism, _, tag = stage.partition(":")
        result = answer_regions(mechanism, tag)
        for key, value in result["f1"].items():
            print(f"{mechanism}{tag} {key}: n={value['n']} F1={value['f1']:.3f}")
        for receiver, d in result["latent_minus_budget"].items():
            print(f"{mechanism}{tag} {receiver} latent - context_budget F1: {d['mean']:+.3f} (se {d['se']:.3f}, "
                  f"95% bootstrap {d['ci95'][0]:+.3f} to {d['ci95'][1]:+.3f}, n={d['n']})")
    if args.regions:
        return
    if not args.merge:
        for mechanism in args.mechanisms:
            if mechanism not in QA_ONLY:
                print(f"== {mechanism}: reconstruction", flush=True)
                reconstruction(mechanism, args.steps, args.n_spans, args.overrides)
            if args.qa:
                print(f"== {mechanism}: context-only QA", flush=True)
                qa(mechanism, args.qa_steps, args.n_qa, args.overrides + args.qa_overrides, args.qa_tag)
    from latentwire.eval.report import plain_table
    rows = merge()
    print(plain_table(rows, COLUMNS))
    path = plot()
    if path:
        print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
