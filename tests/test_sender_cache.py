"""The benchmark's on-disk store of per-example sender work (latentwire.eval.sender_cache)."""
import json

import pytest

from latentwire.eval.sender_cache import LEGACY_NAME, SenderCache, cache_path

PRINT = {"sender": "smollm2-135m", "dtype": "bfloat16", "data": ["squad", "", "validation", 2000]}


def test_per_example_entries_survive_a_restart_and_objects_do_not(tmp_path):
    cache = SenderCache(tmp_path, PRINT)
    cache[("lm_coded", "q1")] = {"context_only": {"bytes": 97, "decoded": "a b"}}
    cache[("llmlingua", "q1", 0.5, "context_only")] = ("pruned text", 0.25)
    cache["lm_coder"] = object()                      # a resource object: memory only
    again = SenderCache(tmp_path, PRINT)
    assert again[("lm_coded", "q1")] == {"context_only": {"bytes": 97, "decoded": "a b"}}
    pruned, seconds = again[("llmlingua", "q1", 0.5, "context_only")]
    assert (pruned, seconds) == ("pruned text", 0.25)
    assert "lm_coder" not in again and len(again) == 2


def test_a_half_written_last_line_is_dropped(tmp_path):
    SenderCache(tmp_path, PRINT)[("lm_coded", "q1")] = {"bytes": 1}
    with open(cache_path(tmp_path, PRINT), "a") as handle:
        handle.write('{"key": ["lm_coded", "q2"], "val')       # killed mid-write
    again = SenderCache(tmp_path, PRINT)
    assert list(again) == [("lm_coded", "q1")]
    again[("lm_coded", "q3")] = {"bytes": 3}
    assert set(SenderCache(tmp_path, PRINT)) == {("lm_coded", "q1"), ("lm_coded", "q3")}


def test_another_sender_has_its_own_file_and_a_legacy_file_is_adopted(tmp_path):
    SenderCache(tmp_path, PRINT)[("lm_coded", "q1")] = {"bytes": 1}
    other = {**PRINT, "dtype": "float32"}
    assert len(SenderCache(tmp_path, other)) == 0 and len(SenderCache(tmp_path, PRINT)) == 1
    legacy = tmp_path / "old"
    legacy.mkdir()
    (legacy / LEGACY_NAME).write_text(json.dumps({"fingerprint": PRINT}) + "\n" +
                                      json.dumps({"key": ["lm_coded", "q9"], "value": {"bytes": 9}}) + "\n")
    assert SenderCache(legacy, other) == {} and (legacy / LEGACY_NAME).exists()     # not its fingerprint
    assert SenderCache(legacy, PRINT) == {("lm_coded", "q9"): {"bytes": 9}}
    assert not (legacy / LEGACY_NAME).exists()
    cache_path(tmp_path, PRINT).write_text(json.dumps({"fingerprint": other}) + "\n")
    with pytest.raises(ValueError, match="another sender"):
        SenderCache(tmp_path, PRINT)
