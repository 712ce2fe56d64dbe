"""Byte-level encoder: UTF-8 bytes -> small transformer -> M learned queries -> Z [B, M, d_z]."""
from __future__ import annotations

import torch
from torch import nn

from latentwire.config import EncoderConfig
from latentwire.encoders.base import Encoder
from latentwire.encoders.blocks import Resampler


class ByteEncoder(Encoder):
    """Reads raw UTF-8 bytes; needs no tokenizer and no frozen model."""

    def __init__(self, config: EncoderConfig, source=None):
        super().__init__()
        self.max_input = config.max_input
        self.embed = nn.Embedding(256, config.width)
        self.position = nn.Embedding(config.max_input, config.width)
        layer = nn.TransformerEncoderLayer(config.width, config.heads, 4 * config.width, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.resampler = Resampler(config.M, config.width, config.heads, config.layers, config.d_z)

    def featurize(self, text: str) -> torch.Tensor:
        """Byte ids [T] (T <= max_input) of `text`."""
        data = text.encode("utf-8")[: self.max_input]
        return torch.tensor(list(data) or [32], dtype=torch.long)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """byte ids [B, T], mask [B, T] -> Z [B, M, d_z]."""
        positions = torch.arange(features.shape[1], device=features.device)
        hidden = self.embed(features) + self.position(positions)
        hidden = self.body(hidden, src_key_padding_mask=mask == 0)
        return self.resampler(hidden, mask)
