"""Collapse diagnostics of a metrics row: what the first generated tokens are, how alike the latents are,
what the packets cost against the text they replace."""
from __future__ import annotations

from collections import Counter

import torch

from latentwire.eval.prompt_input import PromptInput


def diagnostics(prompts: list[PromptInput], predictions: list[dict], tokenizer) -> dict:
    """Collapse checks: first generated token histogram (top 5) and, for latents, wire bytes and the
    mean pairwise cosine similarity of latents across examples."""
    firsts = Counter(tokenizer.decode(p["generated_ids"][:1]) for p in predictions)
    out = {"first_token_top5": [[token, count / len(predictions)] for token, count in firsts.most_common(5)]}
    latents = [p.latent.flatten().float() for p in prompts if p.latent is not None]
    if latents:
        unit = torch.nn.functional.normalize(torch.stack(latents), dim=-1)
        similarity = unit @ unit.T
        n = len(latents)
        out["latent_cosine"] = ((similarity.sum() - n) / max(1, n * (n - 1))).item()
        out["wire_bytes"] = sum(p.wire_bytes for p in prompts) / len(prompts)
        slots = prompts[0].latent.shape[0]
        out["seq_compression"] = sum(p.content_tokens for p in prompts) / len(prompts) / slots
        out["wire_compression"] = sum(p.text_bytes / p.wire_bytes for p in prompts) / len(prompts)
        out["wire_compression_zstd"] = sum(p.text_bytes_zstd / p.wire_bytes for p in prompts) / len(prompts)
    return out
