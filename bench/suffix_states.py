"""How far a token reader's hidden states after the context (question, anchor, answer inputs) at k move from its
own reading at k = 1 (issue 18, the state alignment): per receiver, the share of the squared norm in the top 4
dimensions, the RMS-normalised and the spread-normalised (latentwire.losses.state_alignment) differences, and the
centred cosine, on the first --n training examples.

    python bench/suffix_states.py runs/token_reader_k2 --k 2 --n 4   # -> bench/results/suffix_states.json
"""
from __future__ import annotations

import argparse
import json

import torch

from latentwire.data.loaders import load_examples
from latentwire.losses import state_alignment
from latentwire.provenance import code_commit
from latentwire.system import LatentWire
from latentwire.train.objective import batch_targets
from latentwire.train.tasks import task_of


def unit(states: torch.Tensor) -> torch.Tensor:
    """states [..., d] scaled to RMS 1 per vector."""
    return states * torch.rsqrt(states.pow(2).mean(-1, keepdim=True) + 1e-6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--results", default="bench/results/suffix_states.json")
    args = parser.parse_args()
    system = LatentWire.from_pretrained(args.checkpoint)
    config = system.config
    examples, _ = load_examples("squad", split="train", n=args.n, seed=3, max_context_chars=config.data.max_context_chars)
    items, _ = task_of(config).build_items(examples, system, config, progress=False)
    targets, _, after = batch_targets(system, items)
    with torch.no_grad():
        system.k = 1
        plain = system([i.features for i in items], targets, after, ("own",), states=True)
        system.k = args.k
        merged = system([i.features for i in items], targets, after, ("own",), states=True)
    rows = []
    for name in plain:
        (teacher, mask), student = plain[name]["states"], merged[name]["states"][0].float()
        teacher = teacher.float()
        taught, read = teacher[:, mask.bool()], student[:, mask.bool()]            # [L, N, d] each
        squares = taught.pow(2)
        centre = taught.mean((1,), keepdim=True)
        rows.append({"receiver": name, "k": args.k, "n": args.n, "checkpoint": args.checkpoint,
                     "top4_share": (squares.topk(4, -1).values.sum(-1) / squares.sum(-1)).mean().item(),
                     "rms_normalised": (unit(read) - unit(taught)).pow(2).mean().item(),
                     "spread_normalised": state_alignment(student, teacher, mask).item(),
                     "centred_cosine": torch.nn.functional.cosine_similarity(
                         read - centre, taught - centre, dim=-1).mean().item(),
                     "code_commit": code_commit()})
        print({key: round(value, 3) if isinstance(value, float) else value for key, value in rows[-1].items()})
    with open(args.results, "w") as handle:
        json.dump({"rows": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
