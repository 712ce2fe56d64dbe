"""Receiver time with and without the prompt prefix cached, in one process, question by question (issue 18).

    python bench/prefix_cache_check.py --n 100       # text and the token reader at k = 4, both receivers

Per receiver, for each of the first --n validation questions: text (the frozen receiver) and the token
reader's k = 4 packet, each timed to the first answer token whole and with the prefix read from a cache
computed once (latentwire.eval.timing.PrefixCache), the four timings interleaved so that drift hits all
alike; and how often the cached reading gives the whole prompt's first answer token. One thread. Prints the
table, writes bench/results/prefix_cache_check.json.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--config", default="configs/token_reader.yaml")
    parser.add_argument("--checkpoint", default="runs/token_reader")
    parser.add_argument("--results", default=str(RESULTS / "prefix_cache_check.json"))
    args = parser.parse_args()

    import torch
    from latentwire.atomic import atomic_write_bytes
    from latentwire.config import load_config
    from latentwire.data.loaders import load_examples
    from latentwire.eval.generation import greedy_decode
    from latentwire.eval.harness import load_models
    from latentwire.eval.methods import METHODS, MethodContext
    from latentwire.eval.timing import PrefixCache
    from latentwire.precision import machine_info
    from latentwire.provenance import code_commit

    torch.set_num_threads(1)
    config = load_config(args.config, [f"checkpoint={args.checkpoint}"])
    examples, _ = load_examples("squad", "", "validation", args.n, 0, config.data.max_context_chars)
    receivers: dict = {}
    system = load_models(config, [("latent_k", args.k)], receivers)
    rows = []
    for name, receiver in receivers.items():
        builder = system.builders[name]
        ctx = MethodContext(receiver, builder, system=system, k=args.k, regime="context_only")
        with system.features.plain(name):
            text = [METHODS["text"].build(e, MethodContext(receiver, builder)) for e in examples]
            plain_cache = PrefixCache(receiver, builder)
        latent = [METHODS["latent_k"].build(e, ctx) for e in examples]
        reader_cache = PrefixCache(receiver, builder, system.features)

        def whole(prompt, features):
            return greedy_decode(receiver, [prompt], 1, builder.stop_ids, builder.pad_id, features).first_logits[0]

        ways = {("text", False): (lambda p: whole(p, None), True),
                ("text", True): (plain_cache.first_logits, True),
                (f"latent_k k={args.k}", False): (lambda p: whole(p(), system.features), False),
                (f"latent_k k={args.k}", True): (lambda p: reader_cache.first_logits(p()), False)}
        seconds = {way: [] for way in ways}
        agree = {"text": 0, f"latent_k k={args.k}": 0}
        for i in range(len(examples)):
            tokens = {}
            for (method, cached), (read, is_text) in ways.items():
                prompt = text[i] if is_text else latent[i].receive
                with system.features.plain(name) if is_text else contextlib.nullcontext():
                    started = time.perf_counter()
                    tokens[method, cached] = int(read(prompt).argmax())
                    seconds[method, cached].append(time.perf_counter() - started)
            for method in agree:
                agree[method] += tokens[method, False] == tokens[method, True]
        for method in agree:
            whole_ms = 1000 * statistics.median(seconds[method, False])
            cached_ms = 1000 * statistics.median(seconds[method, True])
            rows.append({"receiver": name, "method": method, "n": len(examples), "whole_ms": whole_ms,
                         "prefix_cached_ms": cached_ms, "same_first_token": agree[method] / len(examples),
                         "prefix_positions": len(builder.prefix_ids)})
    text_ms = {(r["receiver"], key): r[key] for r in rows if r["method"] == "text"
               for key in ("whole_ms", "prefix_cached_ms")}
    for r in rows:
        r["x_text_whole"] = r["whole_ms"] / text_ms[r["receiver"], "whole_ms"]
        r["x_text_prefix_cached"] = r["prefix_cached_ms"] / text_ms[r["receiver"], "prefix_cached_ms"]
    print("| receiver | method | whole ms | x text | prefix cached ms | x text | same first token |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['receiver']} | {r['method']} | {r['whole_ms']:.1f} | {r['x_text_whole']:.3f} | "
              f"{r['prefix_cached_ms']:.1f} | {r['x_text_prefix_cached']:.3f} | {r['same_first_token']:.2f} |")
    result = {"machine": machine_info(), "code_commit": code_commit(), "checkpoint": args.checkpoint, "rows": rows}
    atomic_write_bytes(Path(args.results), (json.dumps(result, indent=2) + "\n").encode())


if __name__ == "__main__":
    main()
