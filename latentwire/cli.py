"""Command line: `latentwire {eval,train,prepare,fit-unigram} [--config FILE] [section.field=value ...]`, and
the wire across processes: `latentwire {encode,answer,inspect,serve}` (JSONL in, JSONL out; see --help)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

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


def _demo(args: argparse.Namespace) -> int:
    from latentwire.demo import COLUMNS, demo_config

    config = demo_config(args.baselines_only, args.overrides, args.config)  # bad input fails before the heavy imports
    import time

    from latentwire.eval.harness import evaluate
    from latentwire.eval.report import plain_table

    start = time.perf_counter()
    rows = evaluate(config, progress=not args.quiet)
    print(plain_table(rows, list(COLUMNS)))
    print(f"\n{len(rows)} rows in {time.perf_counter() - start:.0f} s; wrote {config.eval.out_dir}/metrics.json, "
          "predictions.jsonl, results.md (every column there)")
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
    if args.bigram_out or not args.out:              # the shipped pair is refitted together
        from latentwire.wire.bigram import DEFAULT_BIGRAM, fit_bigram
        from latentwire.wire.unigram import shipped_path, training_texts

        vocabulary, texts, provenance = training_texts(config)
        bigram = fit_bigram(vocabulary, texts, provenance=provenance, progress=not args.quiet)
        target = Path(args.bigram_out) if args.bigram_out else shipped_path(DEFAULT_BIGRAM)
        bigram.save(target)
        print(f"wrote {target}: successors of {len(bigram.successors)} tokens, "
              f"{sum(len(ids) for ids, _ in bigram.successors.values())} pairs")
    return 0


def _load_model(args: argparse.Namespace):
    from latentwire.system import LatentWire

    return LatentWire.from_pretrained(args.model)


def _key(args: argparse.Namespace) -> bytes | None:
    from latentwire.wire.auth import read_secret

    return read_secret(args.key_file, "--key-file") if args.key_file else None


def _encode(args: argparse.Namespace) -> int:
    from latentwire.service.commands import encode_rows
    from latentwire.service.jsonl import open_input, read_rows, write_row

    key, stream = _key(args), open_input(args.input)
    model = _load_model(args)
    for row in encode_rows(model, read_rows(stream, args.input), key, Path(args.raw_dir) if args.raw_dir else None):
        write_row(sys.stdout, row)
    return 0


def _answer(args: argparse.Namespace) -> int:
    from latentwire.service.commands import answer_rows, read_questions
    from latentwire.service.jsonl import open_input, read_rows, write_row

    key, stream = _key(args), open_input(args.input)
    questions = read_questions(read_rows(open_input(args.questions), args.questions)) if args.questions else {}
    model = _load_model(args)
    base = Path(args.input).parent if args.input != "-" else Path(".")
    for row in answer_rows(model, read_rows(stream, args.input), questions, args.receiver or model.receiver_names,
                           key, base, args.max_new_tokens):
        write_row(sys.stdout, row)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from latentwire.errors import DataError
    from latentwire.service.commands import inspect_packet
    from latentwire.service.jsonl import decode_base64

    try:
        data = sys.stdin.buffer.read() if args.packet == "-" else Path(args.packet).read_bytes()
    except OSError as error:
        raise DataError(f"{args.packet}: {error.strerror or error}") from None
    if args.base64:
        data = decode_base64(data.decode("ascii", "replace").strip())
    info = inspect_packet(data, _load_model(args) if args.model else None, _key(args))
    print(json.dumps(info, indent=2, ensure_ascii=False))
    return 2 if info["problem"] or info.get("made_by_this_model") is False else 0


def _serve(args: argparse.Namespace) -> int:
    import logging

    from latentwire.config import load_config

    flags = [f"serve.{name}={value}" for name, value in (("host", args.host), ("port", args.port),
                                                          ("token_file", args.token_file),
                                                          ("key_file", args.key_file)) if value]
    config = load_config(args.config, [*args.overrides, *flags])
    import uvicorn

    from latentwire.service.app import create_app
    from latentwire.wire.auth import read_secret

    token = read_secret(config.serve.token_file, "serve.token_file") if config.serve.token_file else None
    key = read_secret(config.serve.key_file, "serve.key_file") if config.serve.key_file else None
    model = _load_model(args)
    app = create_app(model, config.serve, token, key, config.eval.max_new_tokens)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    print(f"latentwire serve: model {model.checkpoint_id().hex()} on http://{config.serve.host}:{config.serve.port}",
          file=sys.stderr, flush=True)
    uvicorn.run(app, host=config.serve.host, port=config.serve.port, log_level="warning", access_log=False)
    return 0


def _export_state(args) -> int:
    from latentwire.train.checkpoint import export_state

    target = export_state(Path(args.checkpoint), Path(args.out), ks=args.ks)
    size = sum(p.stat().st_size for p in target.iterdir())
    print(f"latentwire export-state: {target} ({size / 1e6:.1f} MB); continue with "
          f"`latentwire train --config <its recipe> train.continue_from={target}`", file=sys.stderr)
    return 0


def _config_args(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--config", help="YAML file overriding the defaults")
    sub.add_argument("--quiet", action="store_true", help="no progress bars")
    sub.add_argument("overrides", nargs="*", help="section.field=value")


def _model_args(sub: argparse.ArgumentParser, default: str | None = "default") -> None:
    sub.add_argument("--model", default=default, help="weights directory, training out_dir or shipped name "
                                                       f"(default: {default or 'none: header only'})")
    sub.add_argument("--key-file", default="", help="shared key: packets carry (encode) or must carry "
                                                    "(answer, inspect) an HMAC-SHA256 tag")


def _wire_parsers(commands) -> None:
    sub = commands.add_parser("encode", help="contexts (JSONL: id, context, question?) -> packets (JSONL: id, "
                                             "packet base64 or file, bytes)")
    sub.add_argument("--input", default="-", help="JSONL file (default: stdin)")
    sub.add_argument("--raw-dir", default="", help="write each packet as <dir>/<id>.lwp instead of base64")
    _model_args(sub)
    sub.set_defaults(handler=_encode)
    sub = commands.add_parser("answer", help="packets (JSONL from encode) + questions joined by id -> answers "
                                             "(JSONL: id, receiver, answer, receiver_ms)")
    sub.add_argument("--input", default="-", help="packets JSONL (default: stdin); `file` paths relative to it")
    sub.add_argument("--questions", default="", help="JSONL of id, question (needed for context-only packets)")
    sub.add_argument("--receiver", action="append", help="receiver to answer with (repeat; default: all)")
    sub.add_argument("--max-new-tokens", type=int, default=16, help="longest answer in tokens")
    _model_args(sub)
    sub.set_defaults(handler=_answer)
    sub = commands.add_parser("inspect", help="a packet's header, sizes, CRC, and (with --model) whether that "
                                              "model made it and the tokens it names")
    sub.add_argument("packet", help="raw packet file, or - for stdin")
    sub.add_argument("--base64", action="store_true", help="the input is base64 text")
    _model_args(sub, default=None)
    sub.set_defaults(handler=_inspect)
    sub = commands.add_parser("serve", help="HTTP server (uvicorn) for encode/answer, on loopback by default",
                              epilog="Limits: serve.max_body_bytes, serve.queue_limit, serve.timeout_s, "
                                     "serve.max_batch (overrides or --config).")
    sub.add_argument("--host", default="", help="address to listen on (default serve.host: 127.0.0.1)")
    sub.add_argument("--port", type=int, default=0, help="port (default serve.port: 8000)")
    sub.add_argument("--token-file", default="", help="bearer token every /v1 route requires")
    sub.add_argument("--model", default="default", help="weights directory or shipped name (default: default)")
    sub.add_argument("--key-file", default="", help="shared key of packet authentication (HMAC-SHA256)")
    _config_args(sub)
    sub.set_defaults(handler=_serve)
    sub = commands.add_parser("export-state", help="a training checkpoint's weights (bfloat16) and step, a few MB, "
                                                   "to continue from elsewhere with train.continue_from")
    sub.add_argument("checkpoint", help="checkpoint directory or training out_dir (its newest checkpoint)")
    sub.add_argument("out", help="directory to write (replaced atomically)")
    sub.add_argument("--ks", type=int, nargs="+", help="a token reader's k to keep (their merges and layer pools; "
                                                       "the state then reads these k alone)")
    sub.set_defaults(handler=_export_state)


def main(argv: list[str] | None = None) -> int:
    """Entry point; every expected failure becomes one line on stderr and exit code 2."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # offline unless the user sets HF_HUB_OFFLINE=0
    parser = argparse.ArgumentParser(prog="latentwire", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, handler, help_text in [("demo", _demo, "the shipped latent against the text and the context cut "
                                                     "on 50 validation questions, both receivers"),
                                     ("eval", _eval, "evaluate baselines (and latents) on QA data"),
                                     ("train", _train, "train the encoder and adapters (resumes in train.out_dir)"),
                                     ("prepare", _prepare, "build the receivers' safetensors caches in the run's "
                                                           "precision (the first load's conversion, done once)"),
                                     ("fit-unigram", _fit_unigram, "fit the unigram table of the wire's unigram "
                                                                   "coding on data.split=train")]:
        sub = commands.add_parser(name, help=help_text, epilog=EPILOG)
        if name == "fit-unigram":
            sub.add_argument("--out", default="", help="table file (default: the package's shipped table)")
            sub.add_argument("--bigram-out", default="", help="also fit the order-1 table into this file (default "
                                                              "without --out: the package's shipped one)")
        if name == "demo":
            sub.add_argument("--baselines-only", action="store_true", help="text and the context cut only "
                                                                           "(no trained weights needed)")
        _config_args(sub)
        sub.set_defaults(handler=handler)
    _wire_parsers(commands)
    args = parser.parse_args(argv)
    from latentwire.errors import USER_ERRORS

    try:
        return args.handler(args)
    except BrokenPipeError:      # `latentwire encode | head`: the reader left
        return 0
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
