"""A training process killed with SIGKILL (also mid-checkpoint) resumes to the same parameters."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from latentwire.train.checkpoint import latest_checkpoint, read_tensors
from latentwire.train.trainer import examples_trained

STEPS = 6


def _command(tiny_dirs, out: Path) -> list[str]:
    return [sys.executable, "-m", "latentwire.cli", "train", "--quiet",
            f"receivers=[{{name: a, model: {tiny_dirs[0]}}}, {{name: b, model: {tiny_dirs[1]}}}]",
            "encoder.kind=byte", "encoder.M=4", "encoder.d_z=8", "encoder.width=32", "encoder.layers=1",
            "loss.kd_top_k=5", "train.batch_size=2", "train.n_train=6", f"train.steps={STEPS}", "train.warmup=1",
            "train.save_every=1", "train.log_every=1", f"train.out_dir={out}"]


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return read_tensors(latest_checkpoint(out) / "model.safetensors")


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, tiny_dirs):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    reference = tmp_path / "reference"
    subprocess.run(_command(tiny_dirs, reference), check=True, env=env, capture_output=True, timeout=300)

    killed = tmp_path / "killed"
    for deadline_step in (2, 4):  # kill twice, at whatever point of a step or checkpoint write it is
        process = subprocess.Popen(_command(tiny_dirs, killed), env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        started = time.time()
        while time.time() - started < 240:
            newest = latest_checkpoint(killed)
            if newest is not None and int(newest.name.split("-")[1]) >= deadline_step:
                break
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
    subprocess.run(_command(tiny_dirs, killed), check=True, env=env, capture_output=True, timeout=300)
    assert latest_checkpoint(killed).name == f"step-{STEPS:06d}"
    logged = [json.loads(line)["step"] for line in (killed / "log.jsonl").read_text().splitlines()]
    assert logged.count(1) == 1 and logged.count(2) == 1, logged  # resumed, not restarted from scratch
    assert set(logged) == set(range(0, STEPS + 1))
    expected, resumed = _weights(reference), _weights(killed)
    for key, value in expected.items():
        assert torch.allclose(value, resumed[key], atol=1e-6), key
    assert not list((killed / "checkpoints").glob(".staging-*"))  # partial writes were cleaned, never loaded
    # every step trained exactly the examples of the uninterrupted run: none lost, none repeated
    assert examples_trained(killed / "examples.jsonl") == examples_trained(reference / "examples.jsonl")
    assert len(examples_trained(reference / "examples.jsonl")) == STEPS


KILL_IN_SAVE = ["-m", "latentwire.train.kill_in_save"]


def test_sigkill_during_a_checkpoint_write_loses_nothing(tmp_path, tiny_dirs):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    subprocess.run(_command(tiny_dirs, reference), check=True, env=env, capture_output=True, timeout=300)
    args = _command(tiny_dirs, killed)[3:]
    died = subprocess.run([sys.executable, *KILL_IN_SAVE, *args], env={**env, "DIE_AT_WRITE": "5"},
                          capture_output=True, timeout=300)
    assert died.returncode == -signal.SIGKILL
    assert latest_checkpoint(killed).name == "step-000002"          # step 3's write never completed
    assert list((killed / "checkpoints").glob(".staging-*"))         # ... and left its staging dir
    subprocess.run(_command(tiny_dirs, killed), check=True, env=env, capture_output=True, timeout=300)
    expected, resumed = _weights(reference), _weights(killed)
    for key, value in expected.items():
        assert torch.allclose(value, resumed[key], atol=1e-6), key
    assert examples_trained(killed / "examples.jsonl") == examples_trained(reference / "examples.jsonl")
    assert not list((killed / "checkpoints").glob(".staging-*"))


def test_the_cli_writes_a_run_of_no_steps_as_its_start_checkpoint(tmp_path, tiny_dirs):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = tmp_path / "start"
    command = [part if not part.startswith("train.steps=") else "train.steps=0" for part in _command(tiny_dirs, out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert latest_checkpoint(out).name == "step-000000"
    assert "data: none read" in done.stdout and "trained 0 steps" in done.stdout
