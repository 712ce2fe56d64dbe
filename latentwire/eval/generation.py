"""Batched greedy generation with the KV cache, then teacher-forced scoring of the gold answer.

The gold answer is fed only after generation has finished, into a cache cropped back to the
prompt, so nothing derived from it can reach the generated text.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from latentwire.adapters.layer_merge import replacing
from latentwire.eval.prompt_input import PromptInput
from latentwire.latent_inputs import reading
from latentwire.llm.cache import cache_kwarg, output_cache
from latentwire.llm.loader import Receiver


@dataclass
class BatchOutput:
    """Per-example results of one batch (lists of length B)."""

    generated: list[list[int]]       # generated ids, stop token excluded
    first_top5: list[list[int]]      # top-5 ids of the first decoding step
    answer_nll: list[list[float]]    # per-token NLL (nats) of each gold answer's ids
    prefill_seconds: float           # the whole batch's prefill
    total_seconds: float             # prefill + decoding + scoring


def left_pad(prompts: list[PromptInput], receiver: Receiver, pad_id: int) -> dict[str, torch.Tensor]:
    """Model inputs for a batch, left-padded: input_ids [B, T] or inputs_embeds [B, T, d], with masks."""
    device, length = receiver.device, max(p.length for p in prompts)
    mask = torch.zeros(len(prompts), length, dtype=torch.long, device=device)
    for row, prompt in enumerate(prompts):
        mask[row, length - prompt.length:] = 1
    if all(p.ids is not None for p in prompts):
        ids = torch.full((len(prompts), length), pad_id, dtype=torch.long, device=device)
        for row, prompt in enumerate(prompts):
            ids[row, length - prompt.length:] = torch.tensor(prompt.ids, device=device)
        inputs = {"input_ids": ids}
    else:
        embeds = [p.embeds if p.embeds is not None else
                  receiver.embed(torch.tensor([p.ids], device=device))[0] for p in prompts]
        batch = embeds[0].new_zeros(len(prompts), length, embeds[0].shape[-1])
        for row, rows in enumerate(embeds):
            batch[row, length - rows.shape[0]:] = rows
        inputs = {"inputs_embeds": batch}
    return {**inputs, "attention_mask": mask, "position_ids": (mask.cumsum(-1) - 1).clamp(min=0)}


@dataclass
class Decoded:
    """Greedy decoding of one batch, with what scoring needs afterwards."""

    generated: list[list[int]]       # generated ids per example, stop token excluded
    first_logits: torch.Tensor       # [B, V] logits of the first decoding step (float32)
    cache: object                    # KV cache, cropped back to the prompt
    inputs: dict[str, torch.Tensor]  # the left-padded prompt inputs (attention_mask, position_ids, ...)
    prefill_seconds: float


def latent_memory(prompts: list[PromptInput], width: int, device) -> torch.Tensor:
    """The latent each prompt's receiver features read: [B, M, d_model], or [B, 0, d_model] for prompts
    without one (a text prompt, or the no-latent condition of the shuffled-latent test). Latents of different
    lengths (token readers, whose only feature, LoRA, reads no memory) are right-padded with zeros."""
    latents = [p.latent_embeds for p in prompts]
    if all(latent is None for latent in latents):
        return torch.zeros(len(prompts), 0, width, device=device)
    if any(latent is None for latent in latents):
        raise ValueError("a batch mixes prompts with and without a latent")
    longest = max(latent.shape[0] for latent in latents)
    return torch.stack([torch.nn.functional.pad(latent, (0, 0, 0, longest - latent.shape[0]))
                        for latent in latents]).to(device)


@torch.no_grad()
def greedy_decode(receiver: Receiver, prompts: list[PromptInput], max_new_tokens: int, stop_ids: list[int],
                  pad_id: int, features=None) -> Decoded:
    """Greedy-decode up to `max_new_tokens` per prompt (stops at any of `stop_ids`), batched, KV-cached;
    `features` (a ReceiverFeatures, or None for the receiver alone) act through `reading`."""
    start = time.perf_counter()
    memory = latent_memory(prompts, receiver.model.config.hidden_size, receiver.device)
    padded = left_pad(prompts, receiver, pad_id)
    with reading(receiver, features, memory, padded) as inputs, layer_states(receiver, prompts, padded):
        return _decode(receiver.model, inputs, max_new_tokens, stop_ids, start)


def layer_states(receiver: Receiver, prompts: list[PromptInput], padded: dict):
    """The prompts' LayerStates (latent_deep) put in at their decoder layer during the batch's prefill, each
    after its row's left padding (`padded`: left_pad's inputs)."""
    offsets = (padded["attention_mask"] == 0).sum(1).tolist()
    return replacing(receiver.model, [p.layer_states for p in prompts], offsets)


def _decode(model, inputs: dict, max_new_tokens: int, stop_ids: list[int], start: float) -> Decoded:
    mask, positions = inputs["attention_mask"], inputs["position_ids"]
    out = model(**{**inputs, "use_cache": True}, logits_to_keep=1)
    prefill_seconds = time.perf_counter() - start
    first_logits = out.logits[:, -1].float()                                    # [B, V]
    cache, prompt_length = output_cache(out), mask.shape[1]
    stop = torch.tensor(stop_ids, device=mask.device)
    token = first_logits.argmax(-1)                                              # [B]
    done = torch.zeros_like(token, dtype=torch.bool)
    generated: list[list[int]] = [[] for _ in range(mask.shape[0])]
    for step in range(max_new_tokens):
        done |= torch.isin(token, stop)
        for row in (~done).nonzero().flatten().tolist():
            generated[row].append(int(token[row]))
        if done.all() or step == max_new_tokens - 1:
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        positions = positions[:, -1:] + 1
        out = model(input_ids=token[:, None], attention_mask=mask, position_ids=positions,
                    **cache_kwarg(model, cache), use_cache=True)
        token = out.logits[:, -1].argmax(-1)
    extra = cache.get_seq_length() - prompt_length
    if extra > 0:
        cache.crop(-extra)  # drop the generated tokens
    return Decoded(generated, first_logits, cache, inputs, prefill_seconds)


@torch.no_grad()
def generate_and_score(receiver: Receiver, prompts: list[PromptInput], answers: list[list[int]],
                       max_new_tokens: int, stop_ids: list[int], pad_id: int, features=None) -> BatchOutput:
    """Greedy-decode `max_new_tokens` for each prompt, then score `answers` [B][n_b] teacher-forced."""
    start = time.perf_counter()
    memory = latent_memory(prompts, receiver.model.config.hidden_size, receiver.device)
    padded = left_pad(prompts, receiver, pad_id)
    with reading(receiver, features, memory, padded) as inputs, layer_states(receiver, prompts, padded):
        decoded = _decode(receiver.model, inputs, max_new_tokens, stop_ids, start)
        nll = _answer_nll(receiver.model, decoded.cache, decoded.first_logits, decoded.inputs["attention_mask"],
                          decoded.inputs["position_ids"], answers, pad_id)
    return BatchOutput(generated=decoded.generated, first_top5=decoded.first_logits.topk(5, dim=-1).indices.tolist(),
                       answer_nll=nll, prefill_seconds=decoded.prefill_seconds,
                       total_seconds=time.perf_counter() - start)


def _answer_nll(model, cache, first_logits: torch.Tensor, prompt_mask: torch.Tensor,
                prompt_positions: torch.Tensor, answers: list[list[int]], pad_id: int) -> list[list[float]]:
    """Per-token NLL of each answer given the cached prompt; token 0 is scored by `first_logits`."""
    batch, longest = len(answers), max(len(a) for a in answers)
    device = first_logits.device
    ids = torch.full((batch, longest), pad_id, dtype=torch.long, device=device)
    answer_mask = torch.zeros(batch, longest, dtype=torch.long, device=device)
    for row, answer in enumerate(answers):
        ids[row, :len(answer)] = torch.tensor(answer, device=device)
        answer_mask[row, :len(answer)] = 1
    logits = first_logits[:, None]                                               # [B, 1, V]
    if longest > 1:
        mask = torch.cat([prompt_mask, answer_mask[:, :-1]], dim=1)
        positions = prompt_positions[:, -1:] + torch.arange(1, longest, device=device)
        out = model(input_ids=ids[:, :-1], attention_mask=mask, position_ids=positions,
                    **cache_kwarg(model, cache), use_cache=True)
        logits = torch.cat([logits, out.logits.float()], dim=1)                  # [B, n, V]
    token_nll = F.cross_entropy(logits.transpose(1, 2), ids, reduction="none")  # [B, n]
    return [token_nll[row, :len(answer)].tolist() for row, answer in enumerate(answers)]
