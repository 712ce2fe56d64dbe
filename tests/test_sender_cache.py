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


def test_entries_another_process_appends_are_found_on_a_miss(tmp_path):
    reader, writer = SenderCache(tmp_path, PRINT), SenderCache(tmp_path, PRINT)
    assert ("lm_coded", "q1") not in reader
    writer[("lm_coded", "q1")] = {"bytes": 1}
    with open(cache_path(tmp_path, PRINT), "a") as handle:
        handle.write('{"key": ["lm_coded", "q2"], "va')       # still being written by the other process
    assert ("lm_coded", "q1") in reader and reader[("lm_coded", "q1")] == {"bytes": 1}
    assert ("lm_coded", "q2") not in reader
    with open(cache_path(tmp_path, PRINT), "a") as handle:
        handle.write('lue": {"bytes": 2}}\n')
    assert ("lm_coded", "q2") in reader and reader[("lm_coded", "q2")] == {"bytes": 2}


def test_prefill_stores_the_lm_coding_a_run_in_another_process_then_finds(tmp_path, tiny_dirs):
    from latentwire.config import load_config
    from latentwire.eval.sender_prefill import prefill_sender_work

    config = load_config(None, [f"receivers=[{{name: a, model: {tiny_dirs[0]}}}]", "data.n=2",
                                "data.max_context_chars=120"])
    assert prefill_sender_work(config, SenderCache(tmp_path, PRINT), ["lm_coded"], ["context_only"],
                               progress=False) == 1
    stored = SenderCache(tmp_path, PRINT)
    assert len(stored) == 2 and all(key[0] == "lm_coded" for key in stored)
    for value in stored.values():
        assert value["context_only"]["bytes"] > 2 and value["question_aware"]["decode"] > 0
    with pytest.raises(ValueError, match="sender-only method"):
        prefill_sender_work(config, stored, ["text"], ["context_only"])
