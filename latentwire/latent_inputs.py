"""How a receiver reads a latent: [prefix tokens] + latent embeddings + [anchor tokens] (+ answer tokens).

The same assembly serves training (teacher-forced, answer appended) and evaluation (generation).
"""
from __future__ import annotations

import torch

from latentwire.llm.loader import Receiver
from latentwire.prompt import PromptBuilder


def latent_prompt_embeds(receiver: Receiver, builder: PromptBuilder, latent: torch.Tensor) -> torch.Tensor:
    """latent [B, M, d_model] -> inputs_embeds [B, P + M + A, d_model] (prefix, latent, anchor)."""
    device, batch = latent.device, latent.shape[0]
    prefix = receiver.embed(torch.tensor([builder.prefix_ids], device=device)).expand(batch, -1, -1)
    anchor = receiver.embed(torch.tensor([builder.anchor_ids], device=device)).expand(batch, -1, -1)
    return torch.cat([prefix.to(latent.dtype), latent, anchor.to(latent.dtype)], dim=1)


def answer_logits(receiver: Receiver, builder: PromptBuilder, latent: torch.Tensor,
                  targets: torch.Tensor) -> torch.Tensor:
    """Teacher-forced logits [B, K, V] for the K answer targets [B, K] given latent [B, M, d_model].

    Logit k predicts targets[:, k]: position 0 is read after the anchor (t=0), the others after
    answer tokens 0..K-2. Only these K positions go through the LM head.
    """
    prompt = latent_prompt_embeds(receiver, builder, latent)
    K = targets.shape[1]
    answer = receiver.embed(targets[:, :K - 1]).to(prompt.dtype)
    inputs = torch.cat([prompt, answer], dim=1)
    start = prompt.shape[1] - 1
    keep = torch.arange(start, start + K, device=latent.device)
    return receiver.model(inputs_embeds=inputs, logits_to_keep=keep, use_cache=False).logits
