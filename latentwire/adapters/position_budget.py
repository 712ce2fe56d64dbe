"""Receiver-side fitting of a lossless token reading into a position budget (eval.max_position_share).

A reading of T tokens at k takes ceil(T / k) positions. Where that exceeds the budget, the receiver, which holds
the exact tokens, first leaves out tokens it can read without, rule by rule (LEAVE_OUTS, in the order
eval.leave_out names them), and only if still over merges groups of k + 1 (TokenBatch.capped; never with
`predictable`, which offers every token). Each rule offers groups of
token indices, the first to go first; a group goes whole (the context label's two tokens together, so the pairs
after it keep their phase), and only while the reading is still over the budget.

- `label`: the context label every context packet begins with (prompt.CONTEXT_LABEL): the receiver knows it.
- `end_mark`: the sentence-end mark the packet's text closes with ("." "!" "?", a closing quote with it): the
  context's, for a context packet (encoder.input=context; a whole-prompt packet ends with the question's).
- `predictable`: the tokens the shared unigram table finds most probable (" the", ",", " of" ...), the later
  one first among equals: the least information a token, as the coder counts it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from latentwire.errors import CodingError
from latentwire.wire.shared_vocab import SharedVocabulary
from latentwire.wire.unigram import UnigramTable

END_MARKS = frozenset({".", "!", "?", '."', '!"', '?"', ".'", ".)"})


@dataclass(frozen=True)
class ReadingAids:
    """What the leave-out rules may consult: the shared vocabulary's ids of the context label and of the
    sentence-end marks, the unigram table's probabilities [V]. All of it is known to every receiver of the
    packet; nothing about the answer."""

    label_ids: list[int]
    end_mark_ids: frozenset[int]
    probabilities: np.ndarray

    @classmethod
    def of(cls, vocabulary: SharedVocabulary, table: UnigramTable, label: str) -> ReadingAids:
        """The aids of a shared vocabulary and its unigram table, for context packets that begin with `label`."""
        def decodes_to_mark(i: int) -> bool:
            try:
                return vocabulary.decode([i]).strip() in END_MARKS
            except CodingError:       # a piece of a multi-byte character alone
                return False
        marks = frozenset(i for i in range(len(vocabulary)) if decodes_to_mark(i))
        return cls(vocabulary.encode(label), marks, table.probabilities())


def label_groups(ids: list[int], aids: ReadingAids) -> list[list[int]]:
    """The context label's indices as one group, if `ids` [T] begin with it."""
    n = len(aids.label_ids)
    return [list(range(n))] if n and ids[:n] == aids.label_ids else []


def end_mark_groups(ids: list[int], aids: ReadingAids) -> list[list[int]]:
    """The last token as one group, if it is a sentence-end mark."""
    return [[len(ids) - 1]] if ids and ids[-1] in aids.end_mark_ids else []


def predictable_groups(ids: list[int], aids: ReadingAids) -> list[list[int]]:
    """Every token as a group of one, the most probable under the unigram table first (ties: the later)."""
    order = sorted(range(len(ids)), key=lambda i: (-float(aids.probabilities[ids[i]]), -i))
    return [[i] for i in order]


LEAVE_OUTS: dict[str, Callable[[list[int], ReadingAids], list[list[int]]]] = {
    "label": label_groups,
    "end_mark": end_mark_groups,
    "predictable": predictable_groups,
}
"""name -> rule(ids [T], aids) -> index groups the receiver may leave out, the first to go first."""
DEFAULT_RULES = ("label", "end_mark", "predictable")
"""eval.leave_out's default: every rule, in this order (no reading is left over for the merge)."""


def kept_indices(ids: list[int], k: int, positions: int, rules: list[str], aids: ReadingAids) -> list[int]:
    """The indices of `ids` [T] (in order) a reading at k keeps within `positions`: the rules' groups left out,
    rule by rule, while ceil(kept / k) > positions (all of them where nothing needs to go)."""
    kept = set(range(len(ids)))
    for name in rules:
        for group in LEAVE_OUTS[name](ids, aids):
            if math.ceil(len(kept) / k) <= positions:
                return sorted(kept)
            if kept - set(group):          # never leave out everything
                kept.difference_update(group)
    return sorted(kept)
