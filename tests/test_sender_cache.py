"""The benchmark's on-disk store of per-example sender work (latentwire.eval.sender_cache)."""
from latentwire.eval.sender_cache import SenderCache

PRINT = {"sender": "smollm2-135m", "dtype": "bfloat16", "data": ["squad", "", "validation", 2000]}


def test_per_example_entries_survive_a_restart_and_objects_do_not(tmp_path):
    path = tmp_path / "cache.jsonl"
    cache = SenderCache(path, PRINT)
    cache[("lm_coded", "q1")] = {"context_only": {"bytes": 97, "decoded": "a b"}}
    cache[("llmlingua", "q1", 0.5, "context_only")] = ("pruned text", 0.25)
    cache["lm_coder"] = object()                      # a resource object: memory only
    again = SenderCache(path, PRINT)
    assert again[("lm_coded", "q1")] == {"context_only": {"bytes": 97, "decoded": "a b"}}
    pruned, seconds = again[("llmlingua", "q1", 0.5, "context_only")]
    assert (pruned, seconds) == ("pruned text", 0.25)
    assert "lm_coder" not in again and len(again) == 2


def test_a_half_written_last_line_is_dropped(tmp_path):
    path = tmp_path / "cache.jsonl"
    SenderCache(path, PRINT)[("lm_coded", "q1")] = {"bytes": 1}
    with open(path, "a") as handle:
        handle.write('{"key": ["lm_coded", "q2"], "val')       # killed mid-write
    again = SenderCache(path, PRINT)
    assert list(again) == [("lm_coded", "q1")]
    again[("lm_coded", "q3")] = {"bytes": 3}
    assert set(SenderCache(path, PRINT)) == {("lm_coded", "q1"), ("lm_coded", "q3")}


def test_another_senders_work_is_moved_aside_not_reused(tmp_path):
    path = tmp_path / "cache.jsonl"
    SenderCache(path, PRINT)[("lm_coded", "q1")] = {"bytes": 1}
    other = SenderCache(path, {**PRINT, "dtype": "float32"})
    assert len(other) == 0
    aside = list(tmp_path.glob("cache.stale-*.jsonl"))
    assert len(aside) == 1 and "q1" in aside[0].read_text()
    assert len(SenderCache(path, {**PRINT, "dtype": "float32"})) == 0
