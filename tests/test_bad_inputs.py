"""Bad user input fails early with one line naming the field or file and what is allowed."""
import math
import os
import re
import subprocess
from pathlib import Path

import pytest
import torch

from latentwire.cli import main
from latentwire.config import ConfigError, load_config
from latentwire.llm.loader import load_receiver
from latentwire.llm.offline import OfflineModelError
from latentwire.wire import BIT_WIDTHS, QuantizedLatent, dequantize, encode_latent, fake_quantize, pack, quantize
from latentwire.wire import unpack
from latentwire.wire.quantize import FP16_MAX, max_value

CKPT = bytes.fromhex("0123456789abcdef")


def one_line(error: BaseException) -> str:
    """The error's message, checked to be one non-empty line."""
    message = str(error)
    assert message and "\n" not in message
    return message


# ---------------------------------------------------------------- config values, refused when read


@pytest.mark.parametrize("override,field,allowed", [
    ("data.n=-5", "data.n", ">= 0"),
    ("data.n=1.5", "data.n", "whole number"),
    ("data.n=true", "data.n", "whole number"),
    ("data.n='2.5'", "data.n", "whole number"),
    ("data.max_context_chars=0", "data.max_context_chars", ">= 1"),
    ("encoder.M=0", "encoder.M", ">= 1"),
    ("encoder.M=-3", "encoder.M", ">= 1"),
    ("encoder.d_z=0", "encoder.d_z", ">= 1"),
    ("encoder.width=0", "encoder.width", ">= 1"),
    ("encoder.width=130", "encoder.width", "multiple of encoder.heads"),
    ("encoder.layers=0", "encoder.layers", ">= 1"),
    ("encoder.heads=0", "encoder.heads", ">= 1"),
    ("encoder.max_input=0", "encoder.max_input", ">= 1"),
    ("encoder.private_slots=-1", "encoder.private_slots", ">= 0"),
    ("wire.bits=5", "wire.bits", "16, 8, 6, 4"),
    ("wire.eval_bits=[16,3]", "wire.eval_bits", "16, 8, 6, 4"),
    ("wire.group_size=0", "wire.group_size", "1..4096"),
    ("wire.group_size=4097", "wire.group_size", "1..4096"),
    ("eval.batch_size=0", "eval.batch_size", ">= 1"),
    ("eval.max_new_tokens=-1", "eval.max_new_tokens", ">= 1"),
    ("eval.threads=-1", "eval.threads", ">= 0"),
    ("eval.budgets=[16,0]", "eval.budgets", ">= 1"),
    ("eval.sentences=[0]", "eval.sentences", ">= 1"),
    ("eval.timing_n=-1", "eval.timing_n", ">= 0"),
    ("eval.prefix_cache=maybe", "eval.prefix_cache", "true/false"),
    ("eval.fold_weights=maybe", "eval.fold_weights", "true/false"),
    ("eval.rates=[0.5,1.5]", "eval.rates", "(0, 1]"),
    ("eval.regime=blind", "eval.regime", "question_aware, context_only"),
    ("eval.codings=[utf8,lm]", "eval.codings", "utf8, zstd, ids, unigram"),
    ("loss.K=0", "loss.K", ">= 1"),
    ("loss.kd_top_k=0", "loss.kd_top_k", ">= 1"),
    ("loss.kd_tau=0", "loss.kd_tau", "> 0"),
    ("loss.kd_weight=-0.5", "loss.kd_weight", ">= 0"),
    ("loss.kd_weight=true", "loss.kd_weight", "number"),
    ("train.lr=.nan", "train.lr", "number"),
    ("train.steps=-1", "train.steps", ">= 0"),
    ("train.batch_size=0", "train.batch_size", ">= 1"),
    ("train.grad_accum=0", "train.grad_accum", ">= 1"),
    ("train.log_every=0", "train.log_every", ">= 1"),
    ("train.save_every=0", "train.save_every", ">= 1"),
    ("train.clip=0", "train.clip", "> 0"),
    ("train.mixed_precision=fp8", "train.mixed_precision", "no, bf16, fp16"),
    ("receivers=", "receivers", "at least one"),
    ("receivers=a/tiny,b/tiny", "receivers", "distinct names"),
    ("receivers=[{name: x, model: smollm2-135m, dtype: int8}]", "receivers[0].dtype", "float32, bfloat16, float16"),
])
def test_bad_config_value_is_refused_when_read(override, field, allowed):
    with pytest.raises(ConfigError, match="^" + re.escape(field)) as caught:
        load_config(None, [override])
    assert allowed in one_line(caught.value)


@pytest.mark.parametrize("override,field,value", [
    ("data.n=3", "data.n", 3), ("data.n='3'", "data.n", 3), ("data.n=3.0", "data.n", 3), ("data.n=0", "data.n", 0),
    ("train.steps=0", "train.steps", 0), ("eval.threads=0", "eval.threads", 0),
    ("wire.bits=16", "wire.bits", 16), ("wire.group_size=4096", "wire.group_size", 4096),
    ("loss.kd_weight=0", "loss.kd_weight", 0.0),
])
def test_edge_values_are_still_accepted(override, field, value):
    section, key = field.split(".")
    got = getattr(getattr(load_config(None, [override]), section), key)
    assert got == value and type(got) is type(value)


def test_binary_config_file_names_the_file(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="binary.yaml") as caught:
        load_config(path)
    assert "UTF-8" in one_line(caught.value)


# ---------------------------------------------------------------- the CLI: exit code 2 and one line


@pytest.mark.parametrize("args,named", [
    (["eval", "eval.threads=-1"], "eval.threads"),
    (["eval", "eval.batch_size=0"], "eval.batch_size"),
    (["eval", "receivers="], "receivers"),
    (["train", "encoder.M=0"], "encoder.M"),
    (["train", "data.n=1.5"], "data.n"),
    (["eval", "--config", "{binary}"], "binary.yaml"),
    (["eval", "receivers={empty}", "data.n=2", "eval.methods=[text]", "eval.out_dir={out}"], "empty"),
])
def test_cli_exits_2_with_one_line(tmp_path, capsys, args, named):
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "empty").mkdir()
    paths = {"binary": tmp_path / "binary.yaml", "empty": tmp_path / "empty", "out": tmp_path / "out"}
    code = main([arg.format(**paths) for arg in args])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("latentwire: error: ") and named in err


# ---------------------------------------------------------------- receivers: a directory that holds no model


def _files(root, names):
    for name in names:
        (root / name).write_text("{}" if name.endswith(".json") else "random bytes")
    return root


@pytest.mark.parametrize("make,lacks", [
    (lambda d: _files(d, []), "config.json"),
    (lambda d: _files(d, ["notes.txt", "data.bin"]), "config.json"),
    (lambda d: _files(d, ["config.json", "tokenizer.json"]), "*.safetensors"),
    (lambda d: _files(d, ["config.json", "model.safetensors"]), "tokenizer"),
    (lambda d: _files(d, ["notes.txt"]) / "notes.txt", "is a file"),
    (lambda d: d / "no" / "such" / "dir", "no such directory"),
])
def test_directory_without_a_model_is_named(tmp_path, make, lacks):
    path = make(tmp_path)
    with pytest.raises(OfflineModelError, match=re.escape(lacks)) as caught:
        load_receiver(str(path))
    assert str(path) in one_line(caught.value)


def test_hub_id_with_the_hub_offline_says_so(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineModelError, match="nobody-latentwire/no-such-model.*offline") as caught:
        load_receiver("nobody-latentwire/no-such-model")
    one_line(caught.value)


def test_a_complete_model_directory_still_loads(tmp_path):
    from tiny import save_tiny_pair

    llama, _ = save_tiny_pair(tmp_path)
    receiver = load_receiver(str(llama), "tiny")
    assert receiver.name == "tiny" and not any(p.requires_grad for p in receiver.model.parameters())


# ---------------------------------------------------------------- the sender never sends what the receiver refuses


def _hand_built(bits: int, value: float) -> QuantizedLatent:
    """A [2, 4] latent quantised at `bits` in groups of 4, with its first scale (or value, for 16) set to `value`."""
    q = quantize(torch.linspace(-1, 1, 8).reshape(2, 4), bits, 4)
    if bits == 16:
        q.codes[0] = value
    else:
        q.scales = q.scales.float()
        q.scales[0] = value
    return q


@pytest.mark.parametrize("bits,value,match", [
    (8, math.nan, "scales must be finite"), (8, math.inf, "scales must be finite"),
    (4, -0.5, "non-negative"), (6, 1e6, "scales must be finite"),  # 1e6 is inf as a float16 scale
    (16, math.nan, "float16 values must be finite"), (16, -math.inf, "float16 values must be finite"),
    (16, 1e6, "float16 values must be finite"),
])
def test_pack_refuses_what_unpack_would_refuse(bits, value, match):
    with pytest.raises(ValueError, match=match) as caught:
        pack(_hand_built(bits, value), CKPT)
    one_line(caught.value)


@pytest.mark.parametrize("expected", ["01234567", 12345678, b"short", [0] * 8])
def test_unpack_expected_id_must_be_8_bytes(expected):
    packet = encode_latent(torch.ones(2, 3), 8, 4, CKPT)
    with pytest.raises(ValueError, match="must be exactly 8 bytes") as caught:
        unpack(packet, expected)
    one_line(caught.value)


@pytest.mark.parametrize("bits", BIT_WIDTHS)
def test_values_beyond_the_wire_range_are_refused_not_clipped(bits):
    limit = max_value(bits)
    assert limit == (FP16_MAX if bits == 16 else (2 ** (bits - 1) - 1) * FP16_MAX)
    at_limit = torch.tensor([[limit, 1.0, -limit, 0.0]])
    assert dequantize(quantize(at_limit, bits, 4))[0, 0] == limit  # the largest allowed value arrives whole
    too_big = at_limit.clone()
    too_big[0, 0] = limit * 1.01
    for send in (lambda z: quantize(z, bits, 4), lambda z: encode_latent(z, bits, 4, CKPT)):
        with pytest.raises(ValueError, match=re.escape(f"{limit:.6g}")) as caught:
            send(too_big)
        assert f"{bits}-bit" in one_line(caught.value)
    assert torch.isfinite(fake_quantize(too_big[None] * 1e20, bits, 4)).all()  # training never raises


# ---------------------------------------------------------------- an evaluation's folder: nothing lost


def _eval_args(tiny_dirs, out, *extra):
    return ["eval", "--quiet", f"receivers=[{{name: a, model: {tiny_dirs[0]}}}]", "data.n=2", "eval.methods=[text]",
            "eval.max_new_tokens=2", "eval.batch_size=2", f"eval.out_dir={out}", *extra]


def _results(out):
    return {name: (out / name).read_bytes() for name in ("config.json", "rows.jsonl", "predictions.jsonl",
                                                          "metrics.json", "results.md")}


@pytest.mark.parametrize("failing", [
    ["receivers=[{name: a, model: /no/such/model}]"],      # a typo in receivers=
    ["eval.methods=[text,txet]"],                           # an unknown method
    ["checkpoint=/nonexistent"],                            # a checkpoint that is not there (baselines only)
    ["data.source=jsonl", "data.path=/no/such.jsonl"],      # a data file that is not there
])
def test_a_failed_eval_leaves_the_earlier_results_as_they_were(tmp_path, tiny_dirs, capsys, failing):
    out = tmp_path / "eval"
    assert main(_eval_args(tiny_dirs, out)) == 0
    before = _results(out)
    capsys.readouterr()
    assert main(_eval_args(tiny_dirs, out, *failing)) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert _results(out) == before and not (out / ".pending").exists()


def test_another_config_replaces_the_results_only_once_it_has_finished(tmp_path, tiny_dirs, monkeypatch):
    from latentwire.eval import harness
    out = tmp_path / "eval"
    assert main(_eval_args(tiny_dirs, out)) == 0
    before = _results(out)
    real = harness.run_method

    def killed(*args, **kwargs):
        raise KeyboardInterrupt   # the run dies in its first row
    monkeypatch.setattr(harness, "run_method", killed)
    assert main(_eval_args(tiny_dirs, out, "data.n=3")) == 130
    assert _results(out) == before and (out / ".pending" / "config.json").exists()
    monkeypatch.setattr(harness, "run_method", real)
    assert main(_eval_args(tiny_dirs, out, "data.n=3")) == 0
    assert _results(out) != before and '"n": 3' in (out / "rows.jsonl").read_text()
    assert _results(out / "previous") == before and not (out / ".pending").exists()


def test_fit_unigram_cli_writes_a_table_the_codings_accept(tiny_dirs, tmp_path, capsys):
    from latentwire.wire.unigram import UnigramTable
    out = tmp_path / "table.json.gz"
    receivers = f"receivers=[{{name: a, model: {tiny_dirs[0]}}}, {{name: b, model: {tiny_dirs[1]}}}]"
    assert main(["fit-unigram", "--quiet", "--out", str(out), receivers, "data.max_context_chars=300"]) == 0
    table = UnigramTable.load(out)
    assert "bits a token" in capsys.readouterr().out and table.provenance["split"] == "train"
    assert table.provenance["tokens"] == sum(table.counts) > 0
    (tmp_path / "broken.json.gz").write_bytes(b"\x1f\x8b broken")
    assert main(["eval", "--quiet", receivers, "data.n=2", "eval.methods=[text]",
                 f"eval.unigram={tmp_path / 'broken.json.gz'}", f"eval.out_dir={tmp_path / 'run'}"]) == 2
    assert "broken.json.gz" in capsys.readouterr().err


# ---------------------------------------------------------------- bench drivers


def _run_driver(driver: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """bench/<driver> run with `env` and a latentwire that records being called (tmp_path/called)."""
    shim = tmp_path / "latentwire"
    shim.write_text(f"#!/bin/sh\ntouch {tmp_path}/called\n")
    shim.chmod(0o755)
    bench = Path(__file__).resolve().parents[1] / "bench"
    env = {**os.environ, **env, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    return subprocess.run(["bash", str(bench / driver)], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("driver", ["layer_pool.sh", "wide_lora.sh", "self_kd.sh", "wide_pool.sh", "long_reader.sh"])
def test_a_one_reader_driver_refuses_an_unknown_reader_before_it_trains(driver, tmp_path):
    done = _run_driver(driver, tmp_path, READER="nope")
    assert done.returncode == 2 and not (tmp_path / "called").exists()
    assert done.stderr.strip() == "READER must be one of qwen smollm2, got 'nope'"


@pytest.mark.parametrize("k", ["1", "5", "two"])
def test_a_one_reader_driver_refuses_a_k_it_cannot_train_before_it_trains(k, tmp_path):
    done = _run_driver("long_reader.sh", tmp_path, READER="qwen", K=k)
    assert done.returncode == 2 and not (tmp_path / "called").exists()
    assert done.stderr.strip() == ("K (tokens a position the reader is trained and read at) must be 2, 3 or 4, "
                                   f"got '{k}'")
