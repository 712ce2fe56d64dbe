"""How distinct a token reader's merged receiver positions are, per k (issue 18's k >= 3 miss).

    python bench/merge_spread.py bench/state/token_reader bench/state/token_reader_mixr --n 8

For each checkpoint, receiver and k = 1..4, over the first --n validation contexts: the RMS of the receiver
input positions the reader makes (the merge's output) and their mean pairwise cosine within a context (plain
token embeddings, k = 1, are near 0.1; positions that all point one way carry little to tell them apart).
Prints the table, writes bench/results/merge_spread.json.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "merge_spread.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--results", default=str(RESULTS))
    args = parser.parse_args()
    import torch
    import torch.nn.functional as F

    from latentwire.data.loaders import load_examples
    from latentwire.eval.report import plain_table
    from latentwire.precision import machine_info
    from latentwire.provenance import code_commit
    from latentwire.train.load import load_trained

    examples, _ = load_examples("squad", split="validation", n=args.n, seed=0)
    rows, receivers = [], {}
    for checkpoint in args.checkpoints:
        model = load_trained(checkpoint, receivers)
        packets = [model.decode(model.encode(e.question, e.context)) for e in examples]
        for name in model.receivers:
            for k in (1, 2, 3, 4):
                model.k = k
                rms, cosine = [], []
                with torch.no_grad():
                    for tokens in packets:
                        z = model.receiver_embeds(name, tokens)[0].float()       # [positions, d_model]
                        unit = F.normalize(z, dim=-1)
                        rms.append(z.pow(2).mean(-1).sqrt().mean().item())
                        cosine.append((unit @ unit.T).mean().item())
                rows.append({"checkpoint": checkpoint, "receiver": name, "k": k, "n": len(packets),
                             "rms": sum(rms) / len(rms), "mean_pairwise_cosine": sum(cosine) / len(cosine)})
    print(plain_table(rows, ["checkpoint", "receiver", "k", "n", "rms", "mean_pairwise_cosine"]))
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps({"machine": machine_info(), "code_commit": code_commit(),
                                              "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
