"""What a receiver leaves out of question-aware packets within a position budget (eval.leave_out), per rule set
and receiver: mean tokens left out, packets still merging groups of k + 1, the pieces left out most often.

    python bench/leave_out_counts.py --checkpoint bench/state/token_reader_k2_L8 --n 500 \
        --results bench/results/question_aware_L8/leave_out_counts.json

The packets are the ones `latent_selected` sends (the encoder.focus sentences the encoder.focus_scorer picks),
on the validation split's seeded sample of n, as `latentwire eval data.n=<n>` draws it.
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import sys
from pathlib import Path

from latentwire.adapters.position_budget import ReadingAids, kept_indices
from latentwire.data.loaders import load_examples
from latentwire.errors import USER_ERRORS
from latentwire.prompt import CONTEXT_LABEL, PromptBuilder, split_content
from latentwire.provenance import code_commit
from latentwire.sentences import SCORERS, select_sentences
from latentwire.system import LatentWire


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--share", type=float, default=0.5)
    parser.add_argument("--results", help="write the rows to this JSON file")
    args = parser.parse_args()
    if args.k < 1 or not 0 < args.share <= 1:
        parser.error(f"--k must be >= 1 and --share in (0, 1], got {args.k} and {args.share}")
    try:
        system = LatentWire.from_pretrained(args.checkpoint)
    except USER_ERRORS as error:      # a missing or corrupt checkpoint: one line, exit 2
        print(f"leave_out_counts.py: {error}", file=sys.stderr)
        sys.exit(2)
    config, wire = system.config, system.encoder.wire
    examples, _ = load_examples(config.data.source, config.data.path, "validation", args.n, config.data.seed,
                                config.data.max_context_chars)
    scorer = SCORERS[config.encoder.focus_scorer]()
    aids = ReadingAids.of(wire.vocabulary, wire.table, CONTEXT_LABEL)
    rows = []
    for rules in (["label", "end_mark"], ["label", "end_mark", "predictable"]):
        for name, receiver in system.receivers.items():
            builder = PromptBuilder(receiver.tokenizer, config.prompt, name)
            left, merging, pieces, tokens = [], 0, collections.Counter(), 0
            for e in examples:
                chosen = select_sentences(e.question, e.context, max(1, config.encoder.focus), scorer)
                carried, after = split_content(e.question, chosen, "context")
                ids = wire.vocabulary.encode(carried)
                positions = max(1, int(args.share * builder.text_positions(wire.vocabulary.decode(ids), after)))
                kept = kept_indices(ids, args.k, positions, rules, aids)
                tokens += len(ids)
                left.append(len(ids) - len(kept))
                merging += math.ceil(len(kept) / args.k) > positions
                pieces.update(wire.vocabulary.decode([ids[i]]) for i in sorted(set(range(len(ids))) - set(kept)))
            rows.append({"receiver": name, "leave_out": rules, "n": len(examples), "k": args.k,
                         "max_position_share": args.share, "tokens": tokens / len(examples),
                         "left_out": sum(left) / len(left), "still_merging": merging,
                         "most_left_out": pieces.most_common(8), "code_commit": code_commit()})
            r = rows[-1]
            print(f"{name:8} {','.join(rules):28} tokens {r['tokens']:.1f}  left out {r['left_out']:.2f}  "
                  f"still merging {merging}  {r['most_left_out']}")
    if args.results:
        Path(args.results).write_text(json.dumps({"rows": rows}, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
