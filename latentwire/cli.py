"""Command line: `latentwire {eval,train,prepare,fit-unigram} [--config FILE] [section.field=value ...]`."""
from __future__ import annotations

import argparse
import os
import sys

EPILOG = """Overrides use dotted names, e.g. data.n=50 eval.methods=[text,embed_raw] eval.budgets=[32]
receivers=smollm2-135m,qwen2.5-coder-0.5b (an offline name, a Hugging Face id or a local directory)."""


def _eval(args: argparse.Namespace) -> int:
    from latentwire.config import load_config

    config = load_config(args.config, args.overrides)  # bad input fails before the heavy imports
    from latentwire.eval.harness import evaluate
    from latentwire.eval.report import markdown_table

    rows = evaluate(config, progress=not args.quiet)
    print(markdown_table(rows))
    print(f"\nwrote {config.eval.out_dir}/metrics.json, predictions.jsonl, results.md")
    return 0


def _train(args: argparse.Namespace) -> int:
    from latentwire.config import load_config

    config = load_config(args.config, args.overrides)  # bad input fails before the heavy imports
    from latentwire.train.trainer import run_summary, train

    checkpoint = train(config, progress=not args.quiet)
    print(run_summary(config.train.out_dir))
    print(f"trained {config.train.steps} steps; newest checkpoint: {checkpoint}")
    print(f"evaluate it with: latentwire eval checkpoint={checkpoint} eval.methods=[text,latent]")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from latentwire.config import load_config

    config = load_config(args.config, args.overrides)
    from latentwire.llm.loader import load_receiver
    from latentwire.precision import receiver_dtype, resolve_run

    resolve_run(config)
    for spec in config.receivers:
        receiver = load_receiver(spec.model, spec.name, receiver_dtype(spec, config))
        print(f"{spec.name}: {spec.model} ready in {receiver.model.dtype} ({receiver.load_seconds:.1f} s)")
    return 0


def _fit_unigram(args: argparse.Namespace) -> int:
    from latentwire.config import load_config

    config = load_config(args.config, ["data.split=train", "data.n=0", *args.overrides])
    from latentwire.wire.unigram import fit_for_config

    table, out = fit_for_config(config, args.out, progress=not args.quiet)
    print(f"wrote {out}: {len(table.counts)} shared tokens, {table.provenance['tokens']} counted, "
          f"{table.bits_per_token():.2f} bits a token")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; every expected failure becomes one line on stderr and exit code 2."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # offline unless the user sets HF_HUB_OFFLINE=0
    parser = argparse.ArgumentParser(prog="latentwire", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, handler, help_text in [("eval", _eval, "evaluate baselines (and latents) on QA data"),
                                     ("train", _train, "train the encoder and adapters (resumes in train.out_dir)"),
                                     ("prepare", _prepare, "build the receivers' safetensors caches in the run's "
                                                           "precision (the first load's conversion, done once)"),
                                     ("fit-unigram", _fit_unigram, "fit the unigram table of the wire's unigram "
                                                                   "coding on data.split=train")]:
        sub = commands.add_parser(name, help=help_text, epilog=EPILOG)
        if name == "fit-unigram":
            sub.add_argument("--out", default="", help="table file (default: the package's shipped table)")
        sub.add_argument("--config", help="YAML file overriding the defaults")
        sub.add_argument("--quiet", action="store_true", help="no progress bars")
        sub.add_argument("overrides", nargs="*", help="section.field=value")
        sub.set_defaults(handler=handler)
    args = parser.parse_args(argv)
    from latentwire.errors import USER_ERRORS

    try:
        return args.handler(args)
    except USER_ERRORS as error:
        if os.environ.get("LATENTWIRE_DEBUG") == "1":
            raise
        print(f"latentwire: error: {str(error).splitlines()[0] if str(error) else type(error).__name__}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("latentwire: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
