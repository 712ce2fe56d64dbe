"""Receiver time with and without the prompt prefix cached, in one process, question by question (issue 18).

    python bench/prefix_cache_check.py --n 100       # text and the token reader at k = 4, both receivers

Per receiver, for each of the first --n validation questions: text (the frozen receiver) and the token
reader's k = 4 packet, each timed to the first answer token whole and with the prefix read from a cache
computed once (latentwire.eval.timing.PrefixCache), and the packet also with the prefix cached and the
reader's LoRA folded into the receiver's weights (ReceiverFeatures.folded, eval.fold_weights: folded before
the clock starts, as a server hosting the reader keeps it), the timings interleaved so that drift hits all
alike; and how often each faster reading gives the whole prompt's first answer token. One thread. Prints the
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
    parser.add_argument("--checkpoint", default="bench/state/token_reader",
                        help="the reader (default: the committed step-1000 state, runs/token_reader's weights)")
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
        with system.features.folded(name):
            folded_cache = PrefixCache(receiver, builder, system.features)
        latent_name = f"latent_k k={args.k}"

        def whole(prompt, features):
            return greedy_decode(receiver, [prompt], 1, builder.stop_ids, builder.pad_id, features).first_logits[0]

        ways = {("text", "whole"): (lambda p: whole(p, None), True),
                ("text", "prefix cached"): (plain_cache.first_logits, True),
                (latent_name, "whole"): (lambda p: whole(p(), system.features), False),
                (latent_name, "prefix cached"): (lambda p: reader_cache.first_logits(p()), False),
                (latent_name, "prefix cached, LoRA folded"): (lambda p: folded_cache.first_logits(p()), False)}
        seconds = {way: [] for way in ways}
        agree = {way: 0 for way in ways if way[1] != "whole"}
        for i in range(len(examples)):
            tokens = {}
            for (method, how), (read, is_text) in ways.items():
                prompt = text[i] if is_text else latent[i].receive
                with (system.features.plain(name) if is_text else system.features.folded(name)
                      if "folded" in how else contextlib.nullcontext()):
                    started = time.perf_counter()
                    tokens[method, how] = int(read(prompt).argmax())
                    seconds[method, how].append(time.perf_counter() - started)
            for way in agree:
                agree[way] += tokens[way] == tokens[way[0], "whole"]
        for (method, how), timed in seconds.items():
            rows.append({"receiver": name, "method": method, "timing": how, "n": len(examples),
                         "median_ms": 1000 * statistics.median(timed),
                         "same_first_token_as_whole": agree[method, how] / len(examples) if how != "whole" else 1.0,
                         "prefix_positions": len(builder.prefix_ids),
                         "mean_positions": statistics.mean((text if method == "text" else latent)[i].length
                                                           for i in range(len(examples)))})
    text_ms = {(r["receiver"], r["timing"]): r["median_ms"] for r in rows if r["method"] == "text"}
    for r in rows:    # against text timed the same way (text has no LoRA: folded rows against text prefix cached)
        r["x_text"] = r["median_ms"] / text_ms[r["receiver"], r["timing"].removesuffix(", LoRA folded")]
    print("| receiver | method | timing | median ms | x text (timed alike) | same first token as whole |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['receiver']} | {r['method']} | {r['timing']} | {r['median_ms']:.1f} | {r['x_text']:.3f} | "
              f"{r['same_first_token_as_whole']:.2f} |")
    result = {"machine": machine_info(), "code_commit": code_commit(), "checkpoint": args.checkpoint, "rows": rows}
    atomic_write_bytes(Path(args.results), (json.dumps(result, indent=2) + "\n").encode())


if __name__ == "__main__":
    main()
