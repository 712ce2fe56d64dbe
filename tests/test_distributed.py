"""`latentwire train` under `accelerate launch` (2 CPU processes, gloo) equals one process with the same
global batch: gradients are synchronised and every example of a step is seen once."""
import os
import subprocess
import sys

import pytest
import torch

from latentwire.train.checkpoint import latest_checkpoint, read_tensors


FEATURES = {"none": [], "lora+deep_prefix": ["features.lora.enabled=true", "features.lora.rank=2",
                                             "features.deep_prefix.enabled=true", "features.deep_prefix.rank=4"]}


def _args(tiny_dirs, out, batch, accum, features=()):
    return ["train", "--quiet", *features,
            f"receivers=[{{name: a, model: {tiny_dirs[0]}}}, {{name: b, model: {tiny_dirs[1]}}}]",
            "encoder.kind=byte", "encoder.M=4", "encoder.d_z=8", "encoder.width=32", "encoder.layers=1",
            "loss.kd_top_k=5", f"train.batch_size={batch}", f"train.grad_accum={accum}", "train.n_train=8",
            "train.steps=3", "train.warmup=1", "train.save_every=3", f"train.out_dir={out}"]


@pytest.mark.parametrize("features", sorted(FEATURES))
def test_accelerate_launch_two_processes_matches_one_process(tmp_path, tiny_dirs, features):
    """Also with LoRA and a KV feature on: the receiver features run inside the module accelerate wraps."""
    extra = FEATURES[features]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    single, launched = tmp_path / "single", tmp_path / "launched"
    subprocess.run([sys.executable, "-m", "latentwire.cli", *_args(tiny_dirs, single, 2, 2, extra)], check=True,
                   env=env, capture_output=True, timeout=300)
    # on GPUs the same command without ACCELERATE_USE_CPU runs one process per GPU (nccl)
    done = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                           "-m", "latentwire.cli", *_args(tiny_dirs, launched, 2, 1, extra)],
                          env={**env, "ACCELERATE_USE_CPU": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    expected = read_tensors(latest_checkpoint(single) / "model.safetensors")
    got = read_tensors(latest_checkpoint(launched) / "model.safetensors")
    assert (features == "none") != any(key.startswith("features.") for key in expected)
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=1e-4, atol=1e-5, msg=key)
    # half the global batch (what one rank alone would see) ends elsewhere: the comparison can fail
    half = tmp_path / "half"
    subprocess.run([sys.executable, "-m", "latentwire.cli", *_args(tiny_dirs, half, 2, 1, extra)], check=True,
                   env=env, capture_output=True, timeout=300)
    other = read_tensors(latest_checkpoint(half) / "model.safetensors")
    assert any(not torch.allclose(other[k], v, rtol=1e-4, atol=1e-5) for k, v in expected.items())
