"""KV caches across transformers versions: the forward keyword, and a cache pre-filled with entries."""
from __future__ import annotations

import inspect

import torch
from transformers import DynamicCache


def cache_kwarg(model, cache) -> dict:
    """`{name: cache}` under the keyword this transformers version's forward takes for the KV cache."""
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    return {name: cache}


def output_cache(out):
    """The KV cache a forward returned: `cache` in transformers >= 5.2 (reading `past_key_values` there warns
    that it is deprecated), `past_key_values` before."""
    return out["cache"] if "cache" in out else out.past_key_values


def prefilled_cache(model, kv: list[tuple[torch.Tensor, torch.Tensor]]) -> DynamicCache:
    """A cache holding `kv` (per layer: keys, values [B, kv_heads, P, head_dim]) as P earlier positions."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    cache = DynamicCache(config=config)
    dtype = next(model.parameters()).dtype
    for layer, (keys, values) in enumerate(kv):
        cache.update(keys.to(dtype), values.to(dtype), layer)
    return cache


def mask_after_entries(mask: torch.Tensor, entries: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A prompt mask [B, T] behind `entries` cached positions -> (attention mask [B, entries + T],
    position ids [B, T] that count the entries)."""
    full = torch.cat([mask.new_ones(mask.shape[0], entries), mask], dim=1)
    return full, (full.cumsum(-1) - 1).clamp(min=0)[:, entries:]
