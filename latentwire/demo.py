"""`latentwire demo`: the README's main job. The shipped latent (latentwire/weights/default) against the full
text and the context cut to as many receiver positions, on 50 validation questions, both receivers: F1, bytes
on the wire and receiver time per method."""
from __future__ import annotations

from latentwire.config import Config, load_config
from latentwire.weights import DEFAULT, named_path

DEMO_SETTINGS = ("data.n=50", "data.split=validation", "eval.budgets=[20]", "wire.eval_bits=[4]",
                 "eval.shuffled_f1=false", "eval.shuffle_test=false", "eval.joint=false", "eval.timing_n=10",
                 "eval.out_dir=runs/demo")
"""Pinned: 50 questions, the cut at the latent's 20 positions, 4-bit packets, no shuffled-packet F1 and no
shuffle test (bits_specific), no joint rescoring, receiver time at batch 1 on the first 10 questions."""
METHODS = {"latent": "eval.methods=[text,context_budget,latent]", "baselines": "eval.methods=[text,context_budget]"}
COLUMNS = ("receiver", "method", "M", "n", "f1", "em", "wire_bytes", "bytes_utf8", "receiver_ms", "receiver_ms_p90")


def demo_config(baselines_only: bool = False, overrides: list[str] | tuple[str, ...] = (),
                config_file: str | None = None) -> Config:
    """The demo's config: the shipped model's own config (receivers, prompt, encoder) <- `config_file` <-
    DEMO_SETTINGS <- the method list <- `overrides`; `dtype` resolved on this machine."""
    methods = METHODS["baselines" if baselines_only else "latent"]
    checkpoint = ["checkpoint="] if baselines_only else [f"checkpoint={DEFAULT}"]   # not the shipped config's own
    files = [named_path(DEFAULT) / "config.json", *([config_file] if config_file else [])]
    config = load_config(files, [*DEMO_SETTINGS, methods, *checkpoint, *overrides])
    config.resolved_dtype = ""      # the shipped config says where it trained, not what this machine runs
    return config
