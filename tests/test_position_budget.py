"""Receiver-side leave-out rules within a position budget (latentwire.adapters.position_budget)."""
import numpy as np
import pytest

from latentwire.adapters.position_budget import LEAVE_OUTS, ReadingAids, kept_indices
from latentwire.config import load_config
from latentwire.errors import ConfigError

# a toy vocabulary: 0 "Context", 1 ":", 2 " the", 3 " cat", 4 " sat", 5 ".", 6 " on", 7 " mat", 8 ","
AIDS = ReadingAids([0, 1], frozenset({5}), np.array([0.01, 0.02, 0.30, 0.01, 0.01, 0.10, 0.05, 0.01, 0.20]))
PACKET = [0, 1, 2, 3, 4, 6, 2, 7, 5]        # "Context: the cat sat on the mat."  T = 9


def test_nothing_is_left_out_where_the_reading_fits():
    assert kept_indices(PACKET, 2, 5, ["label", "end_mark", "predictable"], AIDS) == list(range(9))
    assert kept_indices(PACKET, 2, 3, [], AIDS) == list(range(9))          # no rules: merging is left to do


def test_the_label_goes_whole_and_first_so_the_pairs_after_it_keep_their_phase():
    # 9 tokens at k = 2 in 4 positions: one token over, yet both label tokens go
    assert kept_indices(PACKET, 2, 4, ["label", "end_mark"], AIDS) == list(range(2, 9))
    # further over: the end mark goes next, and only then
    assert kept_indices(PACKET, 2, 3, ["label", "end_mark"], AIDS) == list(range(2, 8))
    assert kept_indices(PACKET, 2, 3, ["end_mark", "label"], AIDS) == list(range(2, 8))
    assert kept_indices(PACKET, 2, 4, ["end_mark", "label"], AIDS) == list(range(8))


def test_rules_that_do_not_apply_leave_everything():
    plain = [2, 3, 4, 6, 2, 7]                   # no label, no end mark
    assert kept_indices(plain, 2, 2, ["label", "end_mark"], AIDS) == list(range(6))


def test_predictable_tokens_go_most_probable_first_the_later_among_equals():
    order = [g[0] for g in LEAVE_OUTS["predictable"](PACKET, AIDS)]
    assert order[:3] == [6, 2, 8]               # " the" (later first), then "."
    kept = kept_indices(PACKET, 2, 3, ["predictable"], AIDS)
    assert kept == [0, 1, 3, 4, 5, 7]           # both " the" and "." left out
    assert kept_indices([2, 2], 1, 0, ["predictable"], AIDS) == [0]   # never everything


def test_an_unknown_rule_is_a_config_error_naming_the_field():
    with pytest.raises(ConfigError, match=r"eval.leave_out must list rules among label, end_mark, predictable"):
        load_config(None, ["eval.leave_out=[label,nothing]"])
    assert load_config(None, []).eval.leave_out == ["label", "end_mark", "predictable"]


def test_the_counting_driver_refuses_a_missing_checkpoint_in_one_line(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    driver = Path(__file__).parents[1] / "bench" / "leave_out_counts.py"
    done = subprocess.run([sys.executable, str(driver), "--checkpoint", str(tmp_path / "none")], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"leave_out_counts.py: no checkpoint in {tmp_path / 'none'}"]
