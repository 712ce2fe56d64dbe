"""Receiver time: seconds from what a receiver holds (token ids, or a packet) to its first answer token.

With `prefix_cache` the receiver holds its prompt prefix (chat header and instruction: the same ids for every
example and method) in a KV cache computed once, as a server keeps a fixed system prompt's cache, and each
prompt's time counts the rest of it: the content, the question and the anchor.
"""
from __future__ import annotations

import contextlib
import statistics
import time

import torch

from latentwire.adapters.layer_merge import replacing
from latentwire.eval.generation import greedy_decode
from latentwire.eval.prompt_input import PromptInput
from latentwire.llm.cache import cache_kwarg, output_cache
from latentwire.llm.loader import Receiver
from latentwire.prompt import PromptBuilder


class PrefixCache:
    """One receiver's prompt prefix (builder.prefix_ids, P positions) in a KV cache, computed once under
    `features` (None: the receiver alone; else features that act only through its weights, such as LoRA)."""

    def __init__(self, receiver: Receiver, builder: PromptBuilder, features=None):
        if problem := self.problem(builder, features):
            raise ValueError(problem)
        self.receiver, self.builder, self.features = receiver, builder, features
        self.ids = list(builder.prefix_ids)
        ids = torch.tensor([self.ids], device=receiver.device)
        self.embeds = receiver.embed(ids)[0]                                         # [P, d]
        with torch.no_grad(), self._active():
            self.cache = output_cache(receiver.model(input_ids=ids, use_cache=True))

    @staticmethod
    def problem(builder: PromptBuilder, features=None) -> str | None:
        """Why no prefix cache can stand for `builder`'s prefix under `features`, or None."""
        if not builder.prefix_ids:
            return "a prefix cache needs a prompt prefix; this builder's is empty"
        if features is not None and not features.weights_only:
            return ("a prefix cache needs features that act only through the weights (LoRA): "
                    "these read the latent or add cache entries")
        return None

    def _active(self) -> contextlib.AbstractContextManager:
        """The features as they act on every prompt (LoRA on), or nothing."""
        if self.features is None:
            return contextlib.nullcontext()
        width = self.receiver.model.config.hidden_size
        return self.features.reading(self.receiver.name, self.embeds.new_zeros(1, 0, width))

    def holds(self, prompt: PromptInput) -> bool:
        """Whether `prompt` starts with this prefix (its ids, or their embeddings)."""
        length = len(self.ids)
        if prompt.ids is not None:
            return list(prompt.ids[:length]) == self.ids and len(prompt.ids) > length
        return prompt.embeds.shape[0] > length and torch.equal(prompt.embeds[:length], self.embeds)

    @torch.no_grad()
    def first_logits(self, prompt: PromptInput) -> torch.Tensor:
        """The first answer token's logits [V] (float32) for a prompt that `holds`, reading only what follows
        the prefix."""
        model, length = self.receiver.model, len(self.ids)
        total = len(prompt.ids) if prompt.ids is not None else prompt.embeds.shape[0]
        device = self.receiver.device
        rest = ({"input_ids": torch.tensor([prompt.ids[length:]], device=device)} if prompt.ids is not None
                else {"inputs_embeds": prompt.embeds[length:][None]})
        try:
            with self._active(), replacing(model, [prompt.layer_states], [-length]):
                out = model(**rest, attention_mask=torch.ones(1, total, dtype=torch.long, device=device),
                            position_ids=torch.arange(length, total, device=device)[None], use_cache=True,
                            logits_to_keep=1, **cache_kwarg(model, self.cache))
            return out.logits[0, -1].float()
        finally:
            self.cache.crop(length - self.cache.get_seq_length())   # back to the prefix alone


def folds(features, fold: bool) -> bool:
    """Whether a timing with `fold` folds `features` into the receiver's weights: only features that act
    through the weights alone (LoRA) can be."""
    return fold and features is not None and features.weights_only


def first_token_seconds(receiver: Receiver, builder: PromptBuilder, prompts: list, features=None,
                        prefix_cache: bool = False, fold: bool = False) -> list[float]:
    """Per prompt, alone (batch 1): seconds to the first answer token (prefill + its argmax). A prompt is a
    PromptInput, or a callable returning one (e.g. decoding a packet: its time counts). With `prefix_cache`
    the prompt prefix is read from a cache computed once where it can be, with `fold` the features are folded
    into the receiver's weights where they can be (`first_token_timing`)."""
    return first_token_timing(receiver, builder, prompts, features, prefix_cache, fold)[0]


@torch.no_grad()
def first_token_timing(receiver: Receiver, builder: PromptBuilder, prompts: list, features=None,
                       prefix_cache: bool = False, fold: bool = False) -> tuple[list[float], int]:
    """(`first_token_seconds`, how many prompts read their prefix from the cache): with `prefix_cache`, those
    that start with the prefix, under features that act only through the weights; the others are timed whole.
    With `fold` such features are folded into the weights first (ReceiverFeatures.folded, done once, as a
    server hosting the reader would, so not timed): each prompt then costs the frozen model's forward."""
    with features.folded(receiver.name) if folds(features, fold) else contextlib.nullcontext():
        usable = prefix_cache and PrefixCache.problem(builder, features) is None
        cached = PrefixCache(receiver, builder, features) if usable else None
        seconds, hits = [], 0
        for prompt in prompts:
            started = time.perf_counter()
            given = prompt() if callable(prompt) else prompt
            if cached is not None and cached.holds(given):
                int(cached.first_logits(given).argmax())
                hits += 1
            else:
                greedy_decode(receiver, [given], 1, builder.stop_ids, builder.pad_id, features)
            seconds.append(time.perf_counter() - started)
    return seconds, hits


def summary_ms(seconds: list[float]) -> dict[str, float]:
    """{median_ms, p90_ms, n} of per-example seconds."""
    ordered = sorted(seconds)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return {"median_ms": 1000 * statistics.median(ordered), "p90_ms": 1000 * p90, "n": len(ordered)}


__all__ = ["PrefixCache", "PromptInput", "first_token_seconds", "folds", "first_token_timing", "summary_ms"]
