"""Receiver time: seconds from what a receiver holds (token ids, or a packet) to its first answer token."""
from __future__ import annotations

import statistics
import time

import torch

from latentwire.eval.generation import greedy_decode
from latentwire.eval.prompt_input import PromptInput
from latentwire.llm.loader import Receiver
from latentwire.prompt import PromptBuilder


@torch.no_grad()
def first_token_seconds(receiver: Receiver, builder: PromptBuilder, prompts: list, features=None) -> list[float]:
    """Per prompt, alone (batch 1): seconds to the first answer token (prefill + its argmax). A prompt is a
    PromptInput, or a callable returning one (e.g. decoding a packet: its time counts)."""
    seconds = []
    for prompt in prompts:
        started = time.perf_counter()
        given = prompt() if callable(prompt) else prompt
        greedy_decode(receiver, [given], 1, builder.stop_ids, builder.pad_id, features)
        seconds.append(time.perf_counter() - started)
    return seconds


def summary_ms(seconds: list[float]) -> dict[str, float]:
    """{median_ms, p90_ms, n} of per-example seconds."""
    ordered = sorted(seconds)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return {"median_ms": 1000 * statistics.median(ordered), "p90_ms": 1000 * p90, "n": len(ordered)}


__all__ = ["PromptInput", "first_token_seconds", "summary_ms"]
