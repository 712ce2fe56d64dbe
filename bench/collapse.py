"""Collapse benchmark (issue 7): does the latent carry its own example? Each mechanism is trained on
reconstruction of 64-token context spans with the same budget, then measured by the shuffled-latent
test on validation spans (bits_specific per packet bit); optionally (--qa) it is fine-tuned on
context-only QA and compared with a context cut to the same number of receiver positions.

    python bench/collapse.py                               # all mechanisms, reconstruction only
    python bench/collapse.py --mechanisms byte embed_pca --steps 60 --n-spans 64
    python bench/collapse.py --qa --qa-steps 100 --n-qa 500   # + context-only QA (long on CPU)
    python bench/collapse.py --merge                       # only collect finished runs

Runs go to runs/bench-collapse/<mechanism>/ (resumable: a finished stage is skipped, a killed
training resumes). Prints a table, writes bench/results/collapse.json and bench/collapse_curves.png
(bits_specific against training step, per receiver).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
RUNS = ROOT / "runs" / "bench-collapse"
BASE = ["encoder.M=8", "encoder.d_z=8", "wire.bits=4", "wire.group_size=32", "loss.objective=reconstruction",
        "loss.span_tokens=64", "loss.kd_weight=0", "train.batch_size=8", "train.lr=0.001", "train.warmup=10",
        "train.n_train=1000", "train.log_every=5", "train.save_every=20", "data.max_context_chars=4000"]
MECHANISMS = {
    "byte": ["encoder.kind=byte", "encoder.width=128", "encoder.layers=2"],
    "embed_pca": ["encoder.kind=embed_pca"],
    "embed_pca+lora": ["encoder.kind=embed_pca", "features.lora.enabled=true"],
    "embed_pca+shuffle": ["encoder.kind=embed_pca", "loss.shuffle_weight=0.1", "loss.shuffle_margin=16"],
    "embed_pca_frozen+lora": ["encoder.kind=embed_pca", "features.lora.enabled=true",
                              "train.freeze=[encoder,adapters]"],
    # 16 slots x 4 dims: the same 64-byte packet as 8 x 8, twice the tokens named (15^4 int4 codes >= the
    # ~37k shared word-like tokens of the default pair)
    "token_code": ["encoder.kind=token_code", "encoder.M=16", "encoder.d_z=4"],
    "token_code+lora": ["encoder.kind=token_code", "encoder.M=16", "encoder.d_z=4", "features.lora.enabled=true"],
    # 20 slots in one int4 group: 24 B header + 2 B scale + 40 B codes + 4 B CRC = 70 B, the packet
    "token_code20+lora": ["encoder.kind=token_code", "encoder.M=20", "encoder.d_z=4", "wire.group_size=80",
                          "features.lora.enabled=true"],
    # for context-only QA: 32 receiver positions each reading two consecutive context tokens (the first 64
    # tokens any vocabulary has), 2 x 4 int4 dims a slot: 24 + 2 + 128 + 4 = 158 B
    "token_pairs+lora": ["encoder.kind=token_code", "encoder.select=prefix", "encoder.tokens_per_slot=2",
                         "encoder.M=32", "encoder.d_z=8", "wire.group_size=256", "features.lora.enabled=true"],
    # for context-only QA, no reconstruction stage (the receivers read real tokens, one a position): 40
    # positions naming the 40 tokens the source LM found least predictable among the context's first 80,
    # in order (LLMLingua's dropping of predictable tokens); 24 + 2 + 80 + 4 = 110 B
    "token_prune+lora": ["encoder.kind=token_code", "encoder.select=prune", "encoder.keep_ratio=0.5",
                         "encoder.M=40", "encoder.d_z=4", "wire.group_size=160", "features.lora.enabled=true"],
    "embed_pca+lora+shuffle": ["encoder.kind=embed_pca", "features.lora.enabled=true", "loss.shuffle_weight=0.1",
                               "loss.shuffle_margin=16"],
}
QA_ONLY = {"token_prune+lora"}   # mechanisms whose QA stage starts from the untrained model
COLUMNS = ["receiver", "mechanism", "objective", "n", "M", "d_z", "bits", "wire_bytes", "text_bytes",
           "bits_specific", "bits_prior", "bits_specific_per_packet_bit", "f1", "f1_shuffled", "token_budget_f1",
           "packet_bytes", "within_quarter", "steps", "sec_per_step"]


def _config(mechanism: str, stage: str, steps: int, extra: list[str]):
    from latentwire.config import load_config
    out = RUNS / mechanism / stage
    overrides = BASE + MECHANISMS[mechanism] + [f"train.steps={steps}", f"train.out_dir={out}"]
    if stage.startswith("qa"):
        start = [] if mechanism in QA_ONLY else [f"train.init_from={RUNS / mechanism / 'reconstruction'}"]
        overrides += ["loss.objective=qa", "encoder.input=context", "loss.kd_weight=0.5", *start, f"checkpoint={out}",
                      "eval.methods=[latent,context_budget]", "wire.eval_bits=[4]", "eval.joint=false",
                      "eval.shuffled_f1=true", f"eval.out_dir={out / 'eval'}"]
    return load_config(None, overrides + extra)   # the command line's overrides win


def reconstruction(mechanism: str, steps: int, n_spans: int, extra: list[str]) -> dict:
    """Train `mechanism` on reconstruction and measure it on validation spans (cached in result.json)."""
    from latentwire.data.loaders import load_examples
    from latentwire.eval.spans import span_shuffle_test
    from latentwire.train.load import load_trained
    from latentwire.train.tasks import span_texts
    from latentwire.train.trainer import make_builders, train

    done = RUNS / mechanism / "reconstruction.json"
    if done.exists():
        return json.loads(done.read_text())
    config = _config(mechanism, "reconstruction", steps, extra)
    started = time.perf_counter()
    checkpoint = train(config)
    seconds = time.perf_counter() - started
    receivers: dict = {}
    system = load_trained(checkpoint, receivers)
    builders = make_builders(config, receivers)   # not setup(): a second model would reset the receivers' LoRA
    examples, _ = load_examples(config.data.source, config.data.path, "validation", n_spans, 0,
                                config.data.max_context_chars)
    measured = span_shuffle_test(system, receivers, builders, examples)
    first = next(iter(receivers.values())).tokenizer
    spans = [span_texts(e.context, first, config.loss.span_tokens, "reconstruction") for e in examples]
    text_bytes = [len(s[0].encode("utf-8")) for s in spans if s]
    log = [json.loads(line) for line in (Path(config.train.out_dir) / "log.jsonl").read_text().splitlines()]
    timed = [r["sec_per_step"] for r in log if "sec_per_step" in r]
    from latentwire.eval.harness import code_commit
    result = {"mechanism": mechanism, "commit": code_commit(), "steps": steps, "train_seconds": seconds,
              "sec_per_step": sum(timed) / len(timed),
              "M": config.encoder.M, "d_z": config.encoder.d_z, "bits": config.wire.bits,
              "text_bytes": sum(text_bytes) / len(text_bytes), "receivers": measured,
              "curve": [{k: v for k, v in r.items() if k == "step" or k.endswith("/bits_specific")} for r in log]}
    done.write_text(json.dumps(result, indent=2))
    return result


def qa(mechanism: str, steps: int, n_qa: int, extra: list[str], tag: str = "") -> dict:
    """Fine-tune the reconstruction run on context-only QA (steps > 0) or carry its weights over as they
    are (steps = 0: the same weights, the QA config's M); F1 of the latent and of the context cut to the
    same number of receiver positions (M), on n_qa validation questions."""
    from latentwire.eval.harness import evaluate
    from latentwire.train.trainer import train

    done = RUNS / mechanism / f"qa{tag}.json"
    if done.exists():
        return json.loads(done.read_text())
    if not any(o.startswith("train.n_train=") for o in extra):   # each training question seen once
        extra = extra + [f"train.n_train={max(steps, 1) * 8}"]      # (BASE's batch of 8)
    config = _config(mechanism, f"qa{tag}", max(steps, 1), extra + [f"data.n={n_qa}"])
    config.eval.budgets = [config.encoder.M]   # the context cut to as many receiver positions as slots
    started = time.perf_counter()
    train(config) if steps > 0 else carry_over(config)
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
    (up to M * tokens_per_slot / keep_ratio tokens), or later (neither reads it). Cached in
    qa{tag}_regions.json beside the stage's json."""
    from latentwire.config import load_config
    from latentwire.data.loaders import load_examples
    from latentwire.llm.loader import load_receiver

    folder = RUNS / mechanism
    done = folder / f"qa{tag}_regions.json"
    if done.exists():
        return json.loads(done.read_text())
    config = load_config(str(folder / f"qa{tag}" / "config.json"), [])
    e = config.encoder
    seen = e.M
    covered = round(e.M * e.tokens_per_slot / (e.keep_ratio if e.select == "prune" else 1))
    examples, _ = load_examples(config.data.source, config.data.path, config.data.split, config.data.n,
                                config.data.seed, config.data.max_context_chars)
    predictions = [json.loads(line) for line in
                   (Path(config.eval.out_dir) / "predictions.jsonl").read_text().splitlines()]
    regions: dict = {}
    for spec in config.receivers:
        tokenizer = load_receiver(spec.model, spec.name, spec.dtype).tokenizer
        for example in examples:
            starts = [p for p in (example.context.find(a) for a in example.answers) if p >= 0]
            if not starts:
                regions[spec.name, example.id] = "answer not in context"
                continue
            offsets = tokenizer(example.context, add_special_tokens=False, return_offsets_mapping=True)
            position = sum(1 for begin, _ in offsets["offset_mapping"] if begin < min(starts))
            regions[spec.name, example.id] = (f"tokens 0-{seen}" if position < seen else
                                              f"tokens {seen}-{covered}" if position < covered else
                                              f"tokens {covered}+")
    table: dict = {}
    for p in predictions:
        key = f"{p['receiver']}/{p['method']}/{regions[p['receiver'], p['id']]}"
        n, total = table.get(key, (0, 0.0))
        table[key] = (n + 1, total + p["f1"])
    result = {"M": seen, "covered": covered,
              "f1": {key: {"n": n, "f1": total / n} for key, (n, total) in sorted(table.items())},
              "latent_minus_budget": paired_difference(predictions)}
    done.write_text(json.dumps(result, indent=2))
    return result


def paired_difference(predictions: list[dict], draws: int = 2000) -> dict:
    """Per receiver, latent F1 minus context_budget F1 over the same questions: the mean, its standard
    error and a paired bootstrap 95% interval (seeded)."""
    import random
    import statistics

    out = {}
    for receiver in sorted({p["receiver"] for p in predictions}):
        by_method: dict = {}
        for p in predictions:
            if p["receiver"] == receiver:
                by_method.setdefault(p["method"], {})[p["id"]] = p["f1"]
        latent, budget = by_method.get("latent", {}), by_method.get("context_budget", {})
        diffs = [latent[i] - budget[i] for i in latent if i in budget]
        if len(diffs) < 2:
            continue
        rng = random.Random(0)
        means = sorted(statistics.fmean(rng.choices(diffs, k=len(diffs))) for _ in range(draws))
        out[receiver] = {"n": len(diffs), "mean": statistics.fmean(diffs),
                         "se": statistics.stdev(diffs) / len(diffs) ** 0.5,
                         "ci95": [means[int(0.025 * draws)], means[int(0.975 * draws) - 1]]}
    return out


def carry_over(config) -> None:
    """Write the reconstruction run's weights, unchanged (a QA-only mechanism: the untrained model's, its
    LoRA at zero), as a step-0 checkpoint of the QA config."""
    from latentwire.train.checkpoint import load_model_weights, save_checkpoint
    from latentwire.train.load import resolve_checkpoint
    from latentwire.train.trainer import setup

    system, _, _ = setup(config)
    if config.train.init_from:
        load_model_weights(system, resolve_checkpoint(config.train.init_from))
    save_checkpoint(Path(config.train.out_dir), 0, system, None,
                    {"bad_steps": 0, "checkpoint_id": system.checkpoint_id().hex()}, config.to_dict())


def merge() -> list[dict]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=HERE).stdout.strip()
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
