"""Shared building blocks: a Perceiver-style resampler from variable-length features to M slots."""
from __future__ import annotations

import torch
from torch import nn


class ResamplerLayer(nn.Module):
    """Queries attend to the features (cross-attention), then to each other, then a feed-forward."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.norm_q, self.norm_kv, self.norm_self, self.norm_ff = (nn.LayerNorm(width) for _ in range(4))
        self.cross = nn.MultiheadAttention(width, heads, batch_first=True)
        self.self_attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, queries: torch.Tensor, features: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """queries [B, M, w], features [B, T, w], pad [B, T] (True = padding) -> [B, M, w]."""
        kv = self.norm_kv(features)
        queries = queries + self.cross(self.norm_q(queries), kv, kv, key_padding_mask=pad, need_weights=False)[0]
        q = self.norm_self(queries)
        queries = queries + self.self_attn(q, q, q, need_weights=False)[0]
        return queries + self.ff(self.norm_ff(queries))


class Resampler(nn.Module):
    """M learned queries pooling [B, T, w] features into [B, M, d_out] by cross-attention."""

    def __init__(self, M: int, width: int, heads: int, layers: int, d_out: int):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(M, width) * width ** -0.5)
        self.layers = nn.ModuleList(ResamplerLayer(width, heads) for _ in range(layers))
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, d_out))

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """features [B, T, w], mask [B, T] (1 = real) -> [B, M, d_out]."""
        queries = self.queries.unsqueeze(0).expand(features.shape[0], -1, -1)
        pad = mask == 0
        for layer in self.layers:
            queries = layer(queries, features, pad)
        return self.out(queries)


def pad_features(items: list[torch.Tensor], pad_value: float = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad per-example features [T_i, ...] into ([B, T_max, ...], mask [B, T_max])."""
    longest = max(max(item.shape[0] for item in items), 1)
    batch = items[0].new_full((len(items), longest, *items[0].shape[1:]), pad_value)
    mask = torch.zeros(len(items), longest, dtype=torch.long, device=items[0].device)
    for row, item in enumerate(items):
        batch[row, :item.shape[0]] = item
        mask[row, :item.shape[0]] = 1
    return batch, mask
