"""dtype auto: bfloat16 only where the processor runs it fast; what ran is recorded; trained weights stay float32."""
import json

import pytest
import torch
from safetensors.torch import load_file

from latentwire import precision
from latentwire.config import load_config
from latentwire.eval.harness import evaluate
from latentwire.system import build_system
from latentwire.train.trainer import train
from helpers import tiny_config


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """Pretend to be a machine with the given CPU flags and matmul times; counts benchmark calls."""
    monkeypatch.setenv("LATENTWIRE_CACHE", str(tmp_path / "cache"))
    calls = []

    def pretend(flags, float32_s=1.0, bfloat16_s=1.0):
        monkeypatch.setattr(precision, "cpu_info", lambda path="/proc/cpuinfo": ("Test CPU", set(flags)))

        def benchmark(dtype):
            calls.append(dtype)
            return float32_s if dtype == torch.float32 else bfloat16_s
        return benchmark
    return pretend, calls


def test_auto_is_float32_where_the_cpu_has_no_fast_bfloat16(machine):
    pretend, calls = machine
    benchmark = pretend({"avx2", "fma", "avx512f"})
    assert precision.cpu_runs_bfloat16_fast(benchmark=benchmark) is False
    assert calls == []   # no flag, no benchmark: bfloat16 would be emulated, slower than float32


def test_flags_alone_are_not_trusted_a_measurement_decides_and_is_cached(machine):
    pretend, calls = machine
    slow = pretend({"avx512_bf16"}, float32_s=1.0, bfloat16_s=0.9)    # flag, but barely faster: float32
    assert precision.cpu_runs_bfloat16_fast(benchmark=slow) is False
    assert len(calls) == 2
    assert precision.cpu_runs_bfloat16_fast(benchmark=slow) is False and len(calls) == 2   # cached
    fast = pretend({"amx_bf16", "avx512_bf16"}, float32_s=6.0, bfloat16_s=1.0)          # another machine
    assert precision.cpu_runs_bfloat16_fast(benchmark=fast) is True and len(calls) == 4


def test_explicit_dtypes_are_kept_and_unknown_ones_refused():
    assert precision.resolve_dtype("float32") == "float32"
    assert precision.resolve_dtype("bfloat16") == "bfloat16"
    assert precision.resolve_dtype("auto") in ("float32", "bfloat16")
    with pytest.raises(ValueError, match="dtype must be one of"):
        precision.resolve_dtype("int8")
    config = load_config(None, ["dtype=float32", "train.mixed_precision=auto"])
    assert precision.mixed_precision(config) == "no" and config.resolved_dtype == "float32"
    assert precision.mixed_precision(load_config(None, ["dtype=bfloat16"])) == "bf16"
    assert precision.mixed_precision(load_config(None, ["dtype=bfloat16", "train.mixed_precision=no"])) == "no"


def test_runs_record_the_requested_and_resolved_dtype_and_train_float32_weights(tmp_path, pair):
    config = tiny_config(tmp_path, "byte", "dtype=bfloat16", "train.steps=2")
    checkpoint = train(config, progress=False, receivers=pair)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["dtype"], saved["resolved_dtype"]) == ("bfloat16", "bfloat16")
    assert all(t.dtype == torch.float32 for t in load_file(str(checkpoint / "model.safetensors")).values())
    rows = evaluate(tiny_config(tmp_path, "byte", "dtype=float32", "eval.methods=[text]"), progress=False,
                    receivers=dict(pair))
    assert all((r["dtype"], r["resolved_dtype"]) == ("float32", "float32") for r in rows)
    assert json.loads((tmp_path / "eval" / "config.json").read_text())["resolved_dtype"] == "float32"


def test_token_codes_decode_the_same_under_bfloat16_autocast(tmp_path, pair):
    system = build_system(tiny_config(tmp_path, "token_code", "dtype=float32"), pair)
    features = [system.featurize_text("Ann is here and Bob is there, in the big house near the old river.")]
    z = system.latent(features, bits=4)
    plain = {name: system.adapters[name](z) for name in ("a", "b")}
    with precision.autocast("bfloat16"):
        cast = {name: system.adapters[name](z) for name in ("a", "b")}
    for name in plain:
        assert cast[name].dtype == torch.float32
        torch.testing.assert_close(cast[name], plain[name])


def test_lora_on_a_bfloat16_receiver_trains_float32_weights_and_loads_a_float32_checkpoint(tmp_path):
    from latentwire.llm.tiny import tiny_receiver
    from latentwire.train.load import load_trained

    def receivers(dtype):
        a, b = tiny_receiver("llama"), tiny_receiver("qwen2", seed=1)
        a.name, b.name, a.source = "a", "b", "tiny-src"
        return {"a": a, "b": b} if dtype == torch.float32 else {n: r for n, r in (("a", a), ("b", b))
                                                                 if r.model.to(dtype) is not None}
    config = tiny_config(tmp_path, "byte", "dtype=float32", "train.steps=1", "features.lora.enabled=true",
                         "features.lora.rank=2")
    checkpoint = train(config, progress=False, receivers=receivers(torch.float32))
    on_bf16 = load_trained(checkpoint, receivers(torch.bfloat16))   # checks the checkpoint id
    assert all(p.dtype == torch.float32 for p in on_bf16.features.parameters())
