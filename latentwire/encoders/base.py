"""What an encoder is: text -> frozen per-example features -> latent Z [B, M, d_z], and what it declares.

An encoder says whether it reads a frozen source LM (`needs_source`: the receiver named by
encoder.source_model), which receiver adapter reads its latent (`adapter`, a name in
latentwire.adapters.ADAPTERS) and, through `link`, what that adapter needs from the sender's side
(a shared code table, a warm start); the model builder asks nothing else of it.
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn


class Encoder(nn.Module):
    """Base class of every encoder in latentwire.encoders.ENCODERS."""

    needs_source: ClassVar[bool] = False
    """True: the encoder reads a frozen source LM, passed to its constructor."""
    adapter: ClassVar[str] = "mlp"
    """The receiver adapter (latentwire.adapters.ADAPTERS) that reads this encoder's latent."""

    def featurize(self, text: str) -> torch.Tensor:
        """Frozen, cacheable features [T, ...] of one text."""
        raise NotImplementedError

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """features [B, T, ...], mask [B, T] -> Z [B, M, d_z]."""
        raise NotImplementedError

    def link(self, receivers: dict) -> dict[str, Any]:
        """Set-up that depends on the receivers (name -> Receiver), done once when the model is built; returns
        what this encoder's adapter needs to read its latent (nothing for the plain MLP adapter)."""
        return {}
