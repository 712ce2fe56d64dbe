"""Untrusted checkpoints, numerical safety, no unpickling anywhere."""
import json
import re
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

import latentwire.train.trainer as trainer
from latentwire.train.checkpoint import CheckpointError
from latentwire.train.load import load_trained
from latentwire.train.trainer import TrainingError, train
from helpers import tiny_config

ROOT = Path(__file__).parent.parent


def test_tampered_checkpoint_files_are_refused_by_name(tmp_path, pair):
    checkpoint = train(tiny_config(tmp_path, "byte", "train.steps=2"), progress=False, receivers=pair)
    weights = checkpoint / "model.safetensors"
    original = weights.read_bytes()
    tensors = load_file(str(weights))
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 0.01                     # a valid file with other numbers in it
    save_file(tensors, str(weights))
    with pytest.raises(CheckpointError, match=re.escape(str(weights))):
        load_trained(checkpoint, dict(pair))
    weights.write_bytes(original)
    state = checkpoint / "state.json"
    state.write_text(state.read_text()[:-10])
    with pytest.raises(CheckpointError, match=re.escape(str(state))):
        load_trained(checkpoint, dict(pair))
    config = checkpoint / "config.json"
    config.write_text(json.dumps({"encoder": {"no_such_field": 1}}))
    with pytest.raises(CheckpointError, match=re.escape(str(config))):
        load_trained(checkpoint, dict(pair))


def test_truncated_optimizer_state_stops_resume_with_its_name(tmp_path, pair):
    config = tiny_config(tmp_path, "byte", "train.steps=2")
    checkpoint = train(config, progress=False, receivers=pair)
    optimizer = checkpoint / "optimizer.safetensors"
    optimizer.write_bytes(optimizer.read_bytes()[:50])
    config.train.steps = 3
    with pytest.raises(CheckpointError, match=re.escape(str(optimizer))):
        train(config, progress=False, receivers=pair)


def _poisoned_loss(bad_calls):
    real, calls = trainer.batch_loss, [0]

    def batch_loss(*args, **kwargs):
        calls[0] += 1
        loss, parts = real(*args, **kwargs)
        return (loss * float("nan"), parts) if calls[0] in bad_calls else (loss, parts)
    return batch_loss


def test_non_finite_steps_are_skipped_counted_and_capped(tmp_path, pair, monkeypatch):
    monkeypatch.setattr(trainer, "batch_loss", _poisoned_loss({2, 4}))
    config = tiny_config(tmp_path, "byte", "train.steps=5", "train.save_every=1", "train.max_bad_steps=3")
    newest = train(config, progress=False, receivers=pair)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["bad_steps"] for r in log if "loss" in r] == [0, 1, 1, 2, 2]
    assert json.loads((newest / "state.json").read_text())["bad_steps"] == 2
    # a skipped step leaves the weights as they were
    before, after = (load_file(str(tmp_path / "run" / "checkpoints" / f"step-00000{i}" / "model.safetensors"))
                     for i in (1, 2))
    assert all((before[k] == after[k]).all() for k in before)
    assert any((before[k] != load_file(str(newest / "model.safetensors"))[k]).any() for k in before)

    monkeypatch.setattr(trainer, "batch_loss", _poisoned_loss({1, 2, 3}))
    with pytest.raises(TrainingError, match="3 steps with a non-finite loss"):
        train(tiny_config(tmp_path, "byte", "train.steps=5", "train.max_bad_steps=2",
                          f"train.out_dir={tmp_path / 'run2'}"), progress=False, receivers=pair)


def test_nothing_unpickles():
    sources = [p for folder in ("latentwire", "bench", "scripts") for p in (ROOT / folder).rglob("*.py")]
    assert sources
    for path in sources:
        text = path.read_text()
        assert "import pickle" not in text and "allow_pickle=True" not in text, path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (path, call)


def test_training_on_bad_rows_skips_lists_and_goes_on(tmp_path, tiny_dirs, capsys):
    from latentwire.cli import main
    rows = [json.dumps({"id": f"ok{i}", "question": f"Who is {i}?", "context": f"{i} is Ann.", "answers": ["Ann"]})
            .encode() for i in range(4)]
    rows += [b'{"id": "utf", "question": "\xff\xfe", "context": "C", "answers": ["A"]}',
             json.dumps({"id": "noanswer", "question": "Q?", "context": "C.", "answers": []}).encode(),
             json.dumps({"id": "empty", "question": "Q?", "context": " ", "answers": ["A"]}).encode(),
             json.dumps({"id": "long", "question": "Q?", "context": "x" * 200_001, "answers": ["A"]}).encode(),
             b"{not json"]
    data = tmp_path / "rows.jsonl"
    data.write_bytes(b"\n".join(rows))
    code = main(["train", "--quiet", f"receivers=[{{name: a, model: {tiny_dirs[0]}}}]", "data.source=jsonl",
                 f"data.path={data}", "encoder.kind=byte", "encoder.M=2", "encoder.d_z=4", "encoder.width=16",
                 "encoder.layers=1", "loss.kd_top_k=3", "train.batch_size=2", "train.steps=2", "train.warmup=1",
                 f"train.out_dir={tmp_path / 'run'}"])
    out = capsys.readouterr().out
    assert code == 0
    assert "data: 4 rows kept, 5 skipped" in out and "non-finite steps skipped: 0" in out
    assert "utf" in out or "noanswer" in out


def test_an_eval_folder_of_an_older_config_resumes_when_the_new_fields_sit_at_their_defaults():
    from latentwire.config import Config
    from latentwire.eval.rundir import same_run

    new = Config().to_dict()
    old = Config().to_dict()
    del old["eval"]["shuffle_test"], old["serve"]            # fields added since that run
    assert same_run(old, new)
    new["eval"]["shuffle_test"] = False                      # not the behaviour the old run had
    assert not same_run(old, new)
    new["eval"]["shuffle_test"], new["eval"]["methods"] = True, ["text", "latent"]   # the grid may differ
    assert same_run(old, new)


def test_an_eval_folder_from_before_eval_leave_out_counts_as_merge_only():
    """eval.leave_out's default changed what a position budget does, so a config that predates the field is
    taken as the merge-only reading it ran (leave_out=[]), not today's default."""
    from latentwire.config import Config
    from latentwire.eval.rundir import same_run

    new = Config().to_dict()
    old = Config().to_dict()
    del old["eval"]["leave_out"]
    assert new["eval"]["leave_out"] and not same_run(old, new)
    new["eval"]["leave_out"] = []
    assert same_run(old, new)
