"""Deep prefix and coprocessor: latent -> extra key/value entries in every layer of a receiver's cache."""
from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from latentwire.encoders.blocks import Resampler
from latentwire.features.base import KV, Feature, kv_shape
from latentwire.llm.loader import Receiver


class KVWriter(nn.Module):
    """Vectors [B, P, d_in] -> per-layer keys and values [B, kv_heads, P, head_dim] through a shared
    rank-r bottleneck; the per-layer projections start at zero (entries start as zero keys and values)."""

    def __init__(self, d_in: int, rank: int, layers: int, kv_heads: int, head_dim: int):
        super().__init__()
        self.layers, self.kv_heads, self.head_dim = layers, kv_heads, head_dim
        self.down = nn.Sequential(nn.LayerNorm(d_in), nn.Linear(d_in, rank), nn.GELU())
        self.up = nn.Parameter(torch.zeros(layers, rank, 2 * kv_heads * head_dim))
        self.bias = nn.Parameter(torch.zeros(layers, 2 * kv_heads * head_dim))

    def forward(self, vectors: torch.Tensor) -> KV:
        batch, entries, _ = vectors.shape
        hidden = self.down(vectors.float())                                          # [B, P, r]
        kv = torch.einsum("bpr,lrk->lbpk", hidden, self.up) + self.bias[:, None, None]  # [L, B, P, 2*h*d]
        kv = kv.view(self.layers, batch, entries, 2, self.kv_heads, self.head_dim).permute(0, 3, 1, 4, 2, 5)
        return [(layer[0], layer[1]) for layer in kv]                                # each [B, h, P, d]


class DeepPrefix(Feature):
    """Every latent slot becomes one key/value entry in every layer (prefix tuning from the latent)."""

    name = "deep_prefix"

    def __init__(self, config, receivers: dict[str, Receiver]):
        super().__init__()
        self.writers = nn.ModuleDict({
            name: KVWriter(r.model.config.hidden_size, config.rank, *kv_shape(r.model))
            for name, r in receivers.items()})

    def receiver_parameters(self, receiver: str) -> Iterator[nn.Parameter]:
        yield from self.writers[receiver].parameters()

    def kv_entries(self, receiver: str, embeds: torch.Tensor) -> KV:
        return self.writers[receiver](embeds)


class Coprocessor(Feature):
    """A small resampler reads the latent and writes `entries` extra key/value entries per layer."""

    name = "coprocessor"

    def __init__(self, config, receivers: dict[str, Receiver]):
        super().__init__()
        self.readers = nn.ModuleDict({
            name: nn.ModuleDict({"into": nn.Linear(r.model.config.hidden_size, config.width),
                                 "resample": Resampler(config.entries, config.width, 4, config.layers, config.width)})
            for name, r in receivers.items()})
        self.writers = nn.ModuleDict({
            name: KVWriter(config.width, config.rank, *kv_shape(r.model)) for name, r in receivers.items()})

    def receiver_parameters(self, receiver: str) -> Iterator[nn.Parameter]:
        yield from self.readers[receiver].parameters()
        yield from self.writers[receiver].parameters()

    def kv_entries(self, receiver: str, embeds: torch.Tensor) -> KV:
        reader = self.readers[receiver]
        features = reader["into"](embeds.float())
        mask = torch.ones(features.shape[:2], dtype=torch.long, device=features.device)
        return self.writers[receiver](reader["resample"](features, mask))
