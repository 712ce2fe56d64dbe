import pytest

from latentwire.config import ConfigError, load_config


def test_defaults_name_both_offline_receivers():
    config = load_config()
    assert [r.model for r in config.receivers] == ["smollm2-135m", "qwen2.5-coder-0.5b"]
    assert config.eval.max_new_tokens > 0


def test_file_then_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  n: 7\neval:\n  budgets: [8]\n")
    config = load_config(path, ["eval.batch_size=3", "eval.methods=[text]", "prompt.use_chat_template=false"])
    assert (config.data.n, config.eval.budgets, config.eval.batch_size) == (7, [8], 3)
    assert config.eval.methods == ["text"] and config.prompt.use_chat_template is False


def test_receivers_shortcut_replaces_list():
    config = load_config(None, ["receivers=smollm2-135m"])
    assert [(r.name, r.model) for r in config.receivers] == [("smollm2", "smollm2-135m")]
    qwen = load_config(None, ["receivers=qwen2.5-coder-0.5b"]).receivers       # the default's name, as trained
    assert [(r.name, r.model) for r in qwen] == [("qwen", "qwen2.5-coder-0.5b")]
    assert load_config(None, ["receivers=org/Other-1B"]).receivers[0].name == "other"


@pytest.mark.parametrize("override, message", [
    ("data.nn=3", "unknown key"),
    ("nope.n=3", "unknown key"),
    ("eval.batch_size=many", "expected int"),
    ("prompt.use_chat_template=maybe", "true/false"),
    ("eval", "section.field=value"),
])
def test_bad_overrides_are_one_line_errors(override, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config(None, [override])
    assert "\n" not in str(info.value)


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)


def test_every_shipped_config_reads():
    from pathlib import Path
    for path in sorted((Path(__file__).parent.parent / "configs").glob("*.yaml")):
        load_config(str(path), [])
