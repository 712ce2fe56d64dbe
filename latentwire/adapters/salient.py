"""Receiver-side salient reading of a lossless packet: the context's least predictable tokens (the most bits
under the shared unigram table: names, numbers, rare words) each get a position of their own, and the runs
of predictable tokens between them are read `run_k` to a position, as many alone as fit in the positions of
a uniform reading at k (M = ceil(T / k)). Same positions, same packet, no question needed: the marks are a
function of the decoded ids alone, and the layout is the two-resolution one (token_merge.focus_layout).
"""
from __future__ import annotations

import math

import numpy as np


def unigram_surprisal(probabilities: np.ndarray) -> np.ndarray:
    """[n] token probabilities -> [n] their code lengths in bits (-log2 p)."""
    return -np.log2(np.asarray(probabilities, dtype=np.float64))


def layout_positions(marks: list[int], run_k: int) -> int:
    """Receiver positions of a two-resolution layout: one per marked token, ceil(L / run_k) per run of L
    unmarked tokens (what focus_layout builds)."""
    positions, run = 0, 0
    for marked in marks:
        if marked:
            positions += 1 + math.ceil(run / run_k)
            run = 0
        else:
            run += 1
    return positions + math.ceil(run / run_k)


def salient_marks(surprisal: list[float], k: int, run_k: int) -> list[int]:
    """[T] code lengths of a context's tokens -> [T] marks (1: read alone), chosen by descending surprisal
    (ties: the earlier token) while the layout (marks alone, the rest run_k a position) stays within
    ceil(T / k) positions; needs 1 <= k <= run_k."""
    if not 1 <= k <= run_k:
        raise ValueError(f"salient reading needs 1 <= k <= run_k, got k={k}, run_k={run_k}")
    length = len(surprisal)
    budget, used = math.ceil(length / k), math.ceil(length / run_k)
    marks = [0] * length
    for t in sorted(range(length), key=lambda t: (-surprisal[t], t)):
        start, end = t, t + 1                      # the run of unmarked tokens that t splits
        while start > 0 and not marks[start - 1]:
            start -= 1
        while end < length and not marks[end]:
            end += 1
        delta = 1 + math.ceil((t - start) / run_k) + math.ceil((end - t - 1) / run_k) - math.ceil((end - start) / run_k)
        if used + delta <= budget:
            marks[t], used = 1, used + delta
    return marks
