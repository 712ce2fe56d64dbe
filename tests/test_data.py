import gzip
import json

import pytest

from latentwire.data.loaders import DataError, load_examples, load_hotpotqa, load_jsonl, load_squad


def test_shipped_slice_splits_by_whole_articles():
    train, _ = load_squad(split="train")
    validation, report = load_squad(split="validation")
    assert len(validation) >= 500 and len(train) >= 1000
    assert not {e.title for e in train} & {e.title for e in validation}
    assert not {e.context for e in train} & {e.context for e in validation}
    assert report.kept == len(validation) and sum(report.skipped.values()) == 0


def test_sample_is_seeded():
    a, _ = load_examples("squad", n=20, seed=3)
    b, _ = load_examples("squad", n=20, seed=3)
    c, _ = load_examples("squad", n=20, seed=4)
    assert [e.id for e in a] == [e.id for e in b] != [e.id for e in c]


def _squad_file(tmp_path, qas, context="Paris is in France."):
    data = {"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": context, "qas": qas}]}]}
    path = tmp_path / "squad.json.gz"
    with gzip.open(path, "wt") as handle:
        json.dump(data, handle)
    return path


def test_bad_squad_rows_are_counted_not_raised(tmp_path):
    path = _squad_file(tmp_path, [
        {"id": "ok", "question": "Where is Paris?", "answers": [{"text": "France"}, {"text": "in France"}]},
        {"id": "noans", "question": "Where?", "answers": []},
        {"id": "badtext", "question": "Wh\ufffdere?", "answers": [{"text": "x"}]},
        {"id": "notdict"},
        "garbage",
    ])
    examples, report = load_squad(path, split="all")
    assert [e.id for e in examples] == ["ok"] and examples[0].answers == ("France", "in France")
    assert report.skipped["no answer"] == 1 and sum(report.skipped.values()) == 4


def test_empty_context_counted(tmp_path):
    path = _squad_file(tmp_path, [{"id": "a", "question": "Q?", "answers": [{"text": "x"}]}], context="  ")
    with pytest.raises(DataError, match="no usable examples"):
        load_examples("squad", str(path), split="all")


def test_jsonl_with_invalid_utf8_and_absurd_length(tmp_path):
    path = tmp_path / "rows.jsonl"
    rows = [json.dumps({"id": "1", "question": "Q?", "context": "C.", "answers": ["A"]}).encode(),
            b'{"id": "2", "question": "\xff\xfe", "context": "C", "answers": ["A"]}',
            json.dumps({"id": "3", "question": "Q?", "context": "x" * 200_001, "answers": ["A"]}).encode(),
            json.dumps({"id": "4", "question": "Q?", "context": "C.", "answers": "single"}).encode(),
            b"[1, 2]", b"{not json"]
    path.write_bytes(b"\n".join(rows))
    examples, report = load_jsonl(path)
    assert [e.id for e in examples] == ["1", "4"]
    assert sum(report.skipped.values()) == 4
    assert any("absurd length" in reason for reason in report.skipped)


def test_hotpotqa_context_from_supporting_paragraphs(tmp_path):
    rows = [{"_id": "h1", "question": "Which?", "answer": "Alpha",
             "supporting_facts": [["A", 0]],
             "context": [["A", ["Alpha is first.", " It leads."]], ["B", ["Beta is a distractor."]]]},
            {"_id": "h2", "question": "Broken", "answer": "x", "supporting_facts": 5, "context": None}]
    path = tmp_path / "hotpot.json"
    path.write_text(json.dumps(rows))
    examples, report = load_hotpotqa(path, max_context_chars=20)
    assert len(examples) == 1 and "Beta" not in examples[0].context and len(examples[0].context) <= 20
    assert sum(report.skipped.values()) == 1


@pytest.mark.parametrize("content, message", [(None, "not found"), (b"{oops", "cannot parse"),
                                              (b'{"data": 3}', "SQuAD layout")])
def test_unusable_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "f.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        load_squad(path, split="all")
    assert "\n" not in str(info.value)


def test_unknown_source_and_missing_path():
    with pytest.raises(DataError, match="data.source"):
        load_examples("wiki")
    with pytest.raises(DataError, match="needs data.path"):
        load_examples("jsonl")
