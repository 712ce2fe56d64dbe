"""Salient reading: the least predictable tokens alone, the rest run_k a position, within a uniform k's positions."""
import math
import random

import pytest
import torch

from latentwire.adapters.salient import layout_positions, salient_marks, unigram_surprisal
from latentwire.adapters.token_merge import focus_layout


def _positions_of_layout(marks: list[int], run_k: int) -> int:
    mask = torch.ones(1, len(marks), dtype=torch.long)
    index, _ = focus_layout(mask, torch.tensor([marks]), run_k)
    return int((index[0] >= 0).any(-1).sum())


def test_marks_fill_the_uniform_budget_and_match_the_readers_layout():
    rng = random.Random(0)
    for _ in range(200):
        length, run_k = rng.randint(1, 60), rng.randint(1, 4)
        k = rng.randint(1, run_k)
        surprisal = [rng.uniform(0, 16) for _ in range(length)]
        marks = salient_marks(surprisal, k, run_k)
        used = layout_positions(marks, run_k)
        assert used == _positions_of_layout(marks, run_k) <= math.ceil(length / k)
        if k == 1:
            assert all(marks)                                    # every token alone: the k = 1 reading


def test_the_rarest_tokens_are_read_alone():
    surprisal = [2.0] * 12
    surprisal[5], surprisal[9] = 15.0, 12.0
    marks = salient_marks(surprisal, 2, 4)                       # budget 6 positions; uniform k = 4 needs 3
    assert marks[5] == 1 and marks[9] == 1
    assert layout_positions(marks, 4) <= 6
    assert salient_marks(surprisal, 4, 4).count(1) <= 2          # at k = run_k only marks that cost no position
    with pytest.raises(ValueError, match="1 <= k <= run_k"):
        salient_marks(surprisal, 3, 2)
    assert unigram_surprisal([0.5, 0.25]).tolist() == [1.0, 2.0]
