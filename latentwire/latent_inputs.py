"""How a receiver reads a latent: [prefix tokens] + latent embeddings [+ text after it] + [anchor tokens]
(+ answer tokens). The text after the latent is the question in context-only mode (encoder.input).

The same assembly serves training (teacher-forced, answer appended) and evaluation (generation).
"""
from __future__ import annotations

import torch

from latentwire.llm.cache import cache_kwarg, mask_after_entries, prefilled_cache
from latentwire.llm.loader import Receiver
from latentwire.prompt import PromptBuilder


def latent_prompt_embeds(receiver: Receiver, builder: PromptBuilder, latent: torch.Tensor) -> torch.Tensor:
    """latent [B, M, d_model] -> inputs_embeds [B, P + M + A, d_model] (prefix, latent, anchor)."""
    device, batch = latent.device, latent.shape[0]
    prefix = receiver.embed(torch.tensor([builder.prefix_ids], device=device)).expand(batch, -1, -1)
    anchor = receiver.embed(torch.tensor([builder.anchor_ids], device=device)).expand(batch, -1, -1)
    return torch.cat([prefix.to(latent.dtype), latent, anchor.to(latent.dtype)], dim=1)


def latent_prompt_batch(receiver: Receiver, builder: PromptBuilder, latent: torch.Tensor,
                        after: list[list[int]] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """latent [B, M, d_model] and per-example token ids to place after it -> (inputs_embeds [B, T, d_model],
    attention mask [B, T]), left-padded so that every row ends with the anchor."""
    if not after or not any(after):
        embeds = latent_prompt_embeds(receiver, builder, latent)
        return embeds, torch.ones(embeds.shape[:2], dtype=torch.long, device=latent.device)
    device, dtype = latent.device, latent.dtype
    prefix = receiver.embed(torch.tensor([builder.prefix_ids], device=device))[0].to(dtype)
    anchor = receiver.embed(torch.tensor([builder.anchor_ids], device=device))[0].to(dtype)
    rows = [torch.cat([prefix, latent[i], receiver.embed(torch.tensor([ids], device=device))[0].to(dtype)
                       if ids else latent[i][:0], anchor]) for i, ids in enumerate(after)]
    length = max(r.shape[0] for r in rows)
    embeds = latent.new_zeros(len(rows), length, latent.shape[-1])
    mask = torch.zeros(len(rows), length, dtype=torch.long, device=device)
    for i, row in enumerate(rows):
        embeds[i, length - row.shape[0]:] = row
        mask[i, length - row.shape[0]:] = 1
    return embeds, mask


def answer_logits(receiver: Receiver, builder: PromptBuilder, latent: torch.Tensor,
                  targets: torch.Tensor, kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
                  after: list[list[int]] | None = None) -> torch.Tensor:
    """Teacher-forced logits [B, K, V] for the K answer targets [B, K] given latent [B, M, d_model].

    Logit k predicts targets[:, k]: position 0 is read after the anchor (t=0), the others after
    answer tokens 0..K-2. Only these K positions go through the LM head. `kv` (per layer: keys,
    values [B, kv_heads, P, head_dim]) are cache entries placed before the prompt (receiver features);
    `after` are per-example ids placed between the latent and the anchor (context-only mode).
    """
    K = targets.shape[1]
    if kv is None and not (after and any(after)):   # the plain path: no padding, no cache
        prompt = latent_prompt_embeds(receiver, builder, latent)
        inputs = torch.cat([prompt, receiver.embed(targets[:, :K - 1]).to(prompt.dtype)], dim=1)
        keep = torch.arange(prompt.shape[1] - 1, prompt.shape[1] - 1 + K, device=latent.device)
        return receiver.model(inputs_embeds=inputs, logits_to_keep=keep, use_cache=False).logits
    prompt, mask = latent_prompt_batch(receiver, builder, latent, after)
    inputs = torch.cat([prompt, receiver.embed(targets[:, :K - 1]).to(prompt.dtype)], dim=1)
    mask = torch.cat([mask, mask.new_ones(mask.shape[0], K - 1)], dim=1)
    keep = torch.arange(prompt.shape[1] - 1, prompt.shape[1] - 1 + K, device=latent.device)
    full, positions = mask_after_entries(mask, kv[0][0].shape[2] if kv is not None else 0)
    extra = cache_kwarg(receiver.model, prefilled_cache(receiver.model, kv)) if kv is not None else {}
    return receiver.model(inputs_embeds=inputs, attention_mask=full, position_ids=positions, logits_to_keep=keep,
                          use_cache=kv is not None, **extra).logits
