"""Helpers shared by test modules (fixtures live in conftest.py)."""
from latentwire.config import Config, load_config


def tiny_config(tmp_path, kind: str = "byte", *extra: str) -> Config:
    """A small config for the `pair` fixture's receivers (a, b): encoder `kind` with M=4, d_z=8, a
    two-example batch, runs and evaluations under tmp_path; `extra` overrides win."""
    return load_config(None, ["receivers=[{name: a, model: x}, {name: b, model: y}]", f"encoder.kind={kind}",
                              "encoder.M=4", "encoder.d_z=8", "encoder.width=32", "encoder.layers=1",
                              "encoder.source_model=tiny-src", "encoder.source_layer=1", "loss.kd_top_k=5",
                              "train.batch_size=2", "train.n_train=6", "train.log_every=1", "train.save_every=2",
                              "train.warmup=1", f"train.out_dir={tmp_path / 'run'}", "data.n=3",
                              f"eval.out_dir={tmp_path / 'eval'}", "eval.max_new_tokens=3", *extra])
