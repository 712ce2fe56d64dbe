"""Config files that start from others (`base:`), and the recipes written that way: configs/collapse/*.yaml
(bench/collapse.py) and configs/collapse_pairs*.yaml resolve to exactly the configs they replaced."""
import importlib.util
from pathlib import Path

import pytest

from latentwire.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "configs" / "collapse"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_file_overrides_its_base_and_the_command_line_overrides_both(tmp_path):
    _write(tmp_path / "common.yaml", "data:\n  n: 7\n  seed: 3\neval:\n  budgets: [8]\n  batch_size: 2\n")
    run = _write(tmp_path / "run.yaml", "base: common.yaml\ndata:\n  n: 9\neval:\n  budgets: [4, 16]\n")
    config = load_config(run, ["eval.batch_size=5"])
    assert (config.data.n, config.data.seed, config.eval.budgets, config.eval.batch_size) == (9, 3, [4, 16], 5)
    assert load_config(tmp_path / "common.yaml").data.n == 7     # the base alone is unchanged


def test_bases_are_relative_to_the_files_folder_applied_in_order_and_recursively(tmp_path, monkeypatch):
    _write(tmp_path / "shared" / "root.yaml", "data:\n  n: 1\n  seed: 1\n  split: train\n")
    _write(tmp_path / "shared" / "middle.yaml", "base: root.yaml\ndata:\n  n: 2\n  seed: 2\n")
    _write(tmp_path / "other" / "extra.yaml", "data:\n  seed: 5\n")
    run = _write(tmp_path / "runs" / "run.yaml", "base: [../shared/middle.yaml, ../other/extra.yaml]\ndata:\n  n: 3\n")
    monkeypatch.chdir(_write(tmp_path / "elsewhere" / "x", "").parent)   # not the files' folder
    config = load_config(Path("..") / "runs" / "run.yaml")
    assert (config.data.n, config.data.seed, config.data.split) == (3, 5, "train")
    assert load_config(run) == config


def test_a_list_of_files_is_applied_in_order(tmp_path):
    first = _write(tmp_path / "first.yaml", "data:\n  n: 1\n  seed: 1\n")
    second = _write(tmp_path / "second.yaml", "data:\n  n: 2\n")
    config = load_config([first, second])
    assert (config.data.n, config.data.seed) == (2, 1)


@pytest.mark.parametrize("files", [{"a.yaml": "base: a.yaml\n"},
                                   {"a.yaml": "base: b.yaml\n", "b.yaml": "base: sub/c.yaml\n",
                                    "sub/c.yaml": "base: ../a.yaml\ndata:\n  n: 3\n"}])
def test_a_cycle_of_bases_is_refused_naming_its_files(tmp_path, files):
    for name, text in files.items():
        _write(tmp_path / name, text)
    with pytest.raises(ConfigError, match="cycle") as info:
        load_config(tmp_path / "a.yaml")
    for name in files:
        assert str((tmp_path / name).resolve()) in str(info.value)
    assert "\n" not in str(info.value)


def test_the_same_base_twice_is_not_a_cycle(tmp_path):
    _write(tmp_path / "root.yaml", "data:\n  n: 1\n")
    _write(tmp_path / "left.yaml", "base: root.yaml\ndata:\n  seed: 4\n")
    _write(tmp_path / "right.yaml", "base: root.yaml\n")
    config = load_config(_write(tmp_path / "run.yaml", "base: [left.yaml, right.yaml]\n"))
    assert (config.data.n, config.data.seed) == (1, 4)


def test_a_missing_base_is_named_with_the_file_that_wants_it(tmp_path):
    run = _write(tmp_path / "run.yaml", "base: recipes/gone.yaml\n")
    with pytest.raises(ConfigError) as info:
        load_config(run)
    message = str(info.value)
    assert str(tmp_path / "recipes" / "gone.yaml") in message and str(run.resolve()) in message


@pytest.mark.parametrize("base", ["[1, 2]", "{a: b}", "''"])
def test_a_base_that_is_not_paths_is_refused(tmp_path, base):
    with pytest.raises(ConfigError, match="base must be a path"):
        load_config(_write(tmp_path / "run.yaml", f"base: {base}\n"))


# bench/collapse.py's recipes as they were Python lists (commit 84224b9): the YAML files must give the same configs
OLD_BASE = ["encoder.M=8", "encoder.d_z=8", "wire.bits=4", "wire.group_size=32", "loss.objective=reconstruction",
            "loss.span_tokens=64", "loss.kd_weight=0", "train.batch_size=8", "train.lr=0.001", "train.warmup=10",
            "train.n_train=1000", "train.log_every=5", "train.save_every=20", "data.max_context_chars=4000"]
OLD_MECHANISMS = {
    "byte": ["encoder.kind=byte", "encoder.width=128", "encoder.layers=2"],
    "embed_pca": ["encoder.kind=embed_pca"],
    "embed_pca+lora": ["encoder.kind=embed_pca", "features.lora.enabled=true"],
    "embed_pca+shuffle": ["encoder.kind=embed_pca", "loss.shuffle_weight=0.1", "loss.shuffle_margin=16"],
    "embed_pca_frozen+lora": ["encoder.kind=embed_pca", "features.lora.enabled=true",
                              "train.freeze=[encoder,adapters]"],
    "token_code": ["encoder.kind=token_code", "encoder.M=16", "encoder.d_z=4"],
    "token_code+lora": ["encoder.kind=token_code", "encoder.M=16", "encoder.d_z=4", "features.lora.enabled=true"],
    "token_code20+lora": ["encoder.kind=token_code", "encoder.M=20", "encoder.d_z=4", "wire.group_size=80",
                          "features.lora.enabled=true"],
    "token_pairs+lora": ["encoder.kind=token_code", "encoder.select=prefix", "encoder.tokens_per_slot=2",
                         "encoder.M=32", "encoder.d_z=8", "wire.group_size=256", "features.lora.enabled=true"],
    "token_prune+lora": ["encoder.kind=token_code", "encoder.select=prune", "encoder.keep_ratio=0.5",
                         "encoder.M=40", "encoder.d_z=4", "wire.group_size=160", "features.lora.enabled=true"],
    "embed_pca+lora+shuffle": ["encoder.kind=embed_pca", "features.lora.enabled=true", "loss.shuffle_weight=0.1",
                               "loss.shuffle_margin=16"],
}
OLD_QA = ["loss.objective=qa", "encoder.input=context", "loss.kd_weight=0.5", "eval.methods=[latent,context_budget]",
          "wire.eval_bits=[4]", "eval.joint=false", "eval.shuffled_f1=true"]
OLD_QA_ONLY = {"token_prune+lora"}


def _collapse_bench():
    spec = importlib.util.spec_from_file_location("bench_collapse", ROOT / "bench" / "collapse.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("mechanism", sorted(OLD_MECHANISMS))
def test_collapse_recipes_resolve_to_the_old_python_lists(tmp_path, mechanism):
    out = tmp_path / mechanism
    run = ["train.steps=40", f"train.out_dir={out / 'stage'}"]
    start = [] if mechanism in OLD_QA_ONLY else [f"train.init_from={out / 'reconstruction'}"]
    qa_run = [*start, f"checkpoint={out / 'stage'}", f"eval.out_dir={out / 'stage' / 'eval'}"]
    old = OLD_BASE + OLD_MECHANISMS[mechanism]
    recipe = RECIPES / f"{mechanism}.yaml"
    assert load_config(recipe, run) == load_config(None, old + run)
    assert load_config([recipe, RECIPES / "qa.yaml"], run + qa_run) == load_config(None, old + run + OLD_QA + qa_run)
    others = [m for m in OLD_MECHANISMS if m != mechanism]   # the comparison can fail: each recipe is its own
    assert all(load_config(recipe, run) != load_config(None, OLD_BASE + OLD_MECHANISMS[m] + run) for m in others)


@pytest.mark.parametrize("mechanism", sorted(OLD_MECHANISMS))
def test_bench_collapse_builds_each_stage_as_before(tmp_path, mechanism):
    bench = _collapse_bench()
    assert sorted(bench.MECHANISMS) == sorted(OLD_MECHANISMS) and bench.QA_ONLY == OLD_QA_ONLY
    bench.RUNS = tmp_path
    out = tmp_path / mechanism
    extra = ["data.n=50", "train.n_train=80"]                    # the command line's overrides still win
    for stage in ("reconstruction", "qa", "qa_long"):
        overrides = OLD_BASE + OLD_MECHANISMS[mechanism] + ["train.steps=10", f"train.out_dir={out / stage}"]
        if stage.startswith("qa"):
            start = [] if mechanism in OLD_QA_ONLY else [f"train.init_from={out / 'reconstruction'}"]
            overrides += ["loss.objective=qa", "encoder.input=context", "loss.kd_weight=0.5", *start,
                          f"checkpoint={out / stage}", "eval.methods=[latent,context_budget]", "wire.eval_bits=[4]",
                          "eval.joint=false", "eval.shuffled_f1=true", f"eval.out_dir={out / stage / 'eval'}"]
        assert bench._config(mechanism, stage, 10, extra) == load_config(None, overrides + extra), stage


# configs/collapse_pairs.yaml as it was, whole, and its header's stage-2 command lines (commit 84224b9)
OLD_PAIRS_YAML = """\
encoder:
  kind: token_code
  select: prefix
  tokens_per_slot: 2
  M: 32
  d_z: 8
wire:
  bits: 4
  group_size: 256
features:
  lora:
    enabled: true
loss:
  objective: reconstruction
  span_tokens: 64
  kd_weight: 0
train:
  steps: 60
  batch_size: 8
  lr: 0.001
  warmup: 10
  n_train: 1000
  log_every: 5
  save_every: 20
  out_dir: runs/collapse_pairs
data:
  max_context_chars: 4000
eval:
  joint: false
  out_dir: runs/collapse_pairs_eval
"""
OLD_TRAIN_QA = ("loss.objective=qa encoder.input=context encoder.M=20 loss.K=8 loss.answer_end=true train.steps=150 "
                "train.n_train=1200 train.init_from=runs/collapse_pairs train.out_dir=runs/collapse_pairs_qa").split()
OLD_EVAL_QA = ("loss.objective=qa encoder.input=context encoder.M=20 checkpoint=runs/collapse_pairs_qa "
               "eval.methods=[latent,context_budget] eval.budgets=[20] wire.eval_bits=[4] eval.shuffled_f1=true "
               "data.n=500").split()


def _flat(values: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _differences(a, b) -> set[str]:
    a, b = _flat(a.to_dict()), _flat(b.to_dict())
    return {key for key in a if a[key] != b[key]}


def test_collapse_pairs_is_the_token_pairs_recipe_with_its_run_folders(tmp_path):
    old = load_config(_write(tmp_path / "collapse_pairs.yaml", OLD_PAIRS_YAML))
    assert load_config(ROOT / "configs" / "collapse_pairs.yaml") == old


def test_collapse_pairs_qa_is_the_headers_stage_2_command_lines(tmp_path):
    pairs = _write(tmp_path / "collapse_pairs.yaml", OLD_PAIRS_YAML)
    stage2 = load_config(ROOT / "configs" / "collapse_pairs_qa.yaml")
    trained, evaluated = load_config(pairs, OLD_TRAIN_QA), load_config(pairs, OLD_EVAL_QA)
    assert stage2 == load_config(pairs, OLD_TRAIN_QA + OLD_EVAL_QA)   # the two command lines' union
    # beside each command line, only what that command does not read: the trainer reads no eval settings,
    # the evaluator takes the model from the checkpoint (its loss and train settings were the trainer's)
    assert _differences(stage2, trained) == {"checkpoint", "data.n", "eval.methods", "eval.budgets",
                                             "wire.eval_bits", "eval.shuffled_f1"}
    assert _differences(stage2, evaluated) == {"loss.K", "loss.answer_end", "train.steps", "train.n_train",
                                               "train.init_from", "train.out_dir"}
