"""What a receiver-side feature is: a module that changes how one frozen receiver reads the latent.

A feature may add key/value entries to the receiver's cache (`kv_entries`) and act while the receiver
reads a latent (`reading`, e.g. hooks that attend to it, LoRA weights switched on). Outside `reading`
a receiver is itself: a feature keeps no state in a receiver that another model on the same receiver
could see or change. `plain` makes sure of it (the text teacher, the text baselines).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

KV = list[tuple[torch.Tensor, torch.Tensor]]   # per decoder layer: keys, values [B, kv_heads, P, head_dim]


class Feature(nn.Module):
    """Base class; subclasses override what they use. `name` is the config section and registry key."""

    name = ""
    weights_only = False
    """True for a feature that acts only through the receiver's weights (it adds no cache entries and reads
    no latent): the prompt's fixed prefix then computes the same under it for every latent."""

    def receiver_parameters(self, receiver: str) -> Iterator[nn.Parameter]:
        """The parameters that belong to receiver `receiver` alone (its LoRA, its writers)."""
        raise NotImplementedError(f"feature {self.name!r} does not say which of its parameters are whose")

    def kv_entries(self, receiver: str, embeds: torch.Tensor) -> KV | None:
        """Extra cache entries for receiver `receiver` from its latent embeddings [B, M, d_model]."""
        return None

    @contextmanager
    def reading(self, receiver: str, embeds: torch.Tensor) -> Iterator[None]:
        """Active while receiver `receiver` reads the latent embeddings [B, M, d_model] (also during decoding)."""
        yield

    @contextmanager
    def plain(self, receiver: str) -> Iterator[None]:
        """Active while receiver `receiver` must behave exactly as the frozen model without this feature."""
        yield

    @contextmanager
    def folded(self, receiver: str) -> Iterator[None]:
        """Inside, a weights-only feature is folded into receiver `receiver`'s weights, so that `reading` costs
        the frozen model's forward (the same outputs up to rounding); `plain` still gives the frozen model."""
        yield


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layer stack of a causal LM (llama, qwen2, gemma3 and most others)."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model.model
    layers = getattr(decoder, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(f"cannot find the decoder layers of {type(model).__name__}")
    return layers


def kv_shape(model: nn.Module) -> tuple[int, int, int]:
    """(layers, kv_heads, head_dim) of a causal LM's attention cache."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return config.num_hidden_layers, kv_heads, head_dim
