"""How a receiver reads a latent: [prefix tokens] + latent embeddings + [anchor tokens] (+ answer tokens).

The same assembly serves training (teacher-forced, answer appended) and evaluation (generation).
"""
from __future__ import annotations

import torch

from latentwire.llm.cache import cache_kwarg, prefilled_cache
from latentwire.llm.loader import Receiver
from latentwire.prompt import PromptBuilder


def latent_prompt_embeds(receiver: Receiver, builder: PromptBuilder, latent: torch.Tensor) -> torch.Tensor:
    """latent [B, M, d_model] -> inputs_embeds [B, P + M + A, d_model] (prefix, latent, anchor)."""
    device, batch = latent.device, latent.shape[0]
    prefix = receiver.embed(torch.tensor([builder.prefix_ids], device=device)).expand(batch, -1, -1)
    anchor = receiver.embed(torch.tensor([builder.anchor_ids], device=device)).expand(batch, -1, -1)
    return torch.cat([prefix.to(latent.dtype), latent, anchor.to(latent.dtype)], dim=1)


def answer_logits(receiver: Receiver, builder: PromptBuilder, latent: torch.Tensor,
                  targets: torch.Tensor, kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> torch.Tensor:
    """Teacher-forced logits [B, K, V] for the K answer targets [B, K] given latent [B, M, d_model].

    Logit k predicts targets[:, k]: position 0 is read after the anchor (t=0), the others after
    answer tokens 0..K-2. Only these K positions go through the LM head. `kv` (per layer: keys,
    values [B, kv_heads, P, head_dim]) are cache entries placed before the prompt (receiver features).
    """
    prompt = latent_prompt_embeds(receiver, builder, latent)
    K = targets.shape[1]
    answer = receiver.embed(targets[:, :K - 1]).to(prompt.dtype)
    inputs = torch.cat([prompt, answer], dim=1)
    start = prompt.shape[1] - 1
    keep = torch.arange(start, start + K, device=latent.device)
    if kv is None:
        return receiver.model(inputs_embeds=inputs, logits_to_keep=keep, use_cache=False).logits
    entries = kv[0][0].shape[2]
    mask = torch.ones(inputs.shape[0], entries + inputs.shape[1], dtype=torch.long, device=inputs.device)
    positions = torch.arange(entries, entries + inputs.shape[1], device=inputs.device).expand(inputs.shape[0], -1)
    cache = cache_kwarg(receiver.model, prefilled_cache(receiver.model, kv))
    return receiver.model(inputs_embeds=inputs, attention_mask=mask, position_ids=positions, logits_to_keep=keep,
                          use_cache=True, **cache).logits
