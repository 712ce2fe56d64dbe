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

from latentwire.wire import decode_latent, encode_latent, fake_quantize


class Encoder(nn.Module):
    """Base class of every encoder in latentwire.encoders.ENCODERS."""

    needs_source: ClassVar[bool] = False
    """True: the encoder reads a frozen source LM, passed to its constructor."""
    adapter: ClassVar[str] = "mlp"
    """The receiver adapter (latentwire.adapters.ADAPTERS) that reads this encoder's latent."""
    carries_tokens: ClassVar[bool] = False
    """True: the latent is the text's tokens (a TokenBatch), sent losslessly as a version 2 packet; False: a
    continuous Z [B, M, d_z], quantised into a version 1 packet."""

    def wire_view(self, z, bits: int, group_size: int):
        """Z as the receiver will get it from the wire: quantised (straight-through) for continuous latents."""
        return fake_quantize(z, bits, group_size)

    def pack(self, z, bits: int, group_size: int, checkpoint_id: bytes) -> bytes:
        """One example's latent (batch of one) -> a version 1 packet stamped with the weights' id."""
        return encode_latent(z[0].cpu(), bits, group_size, checkpoint_id)

    def unpack(self, packet: bytes, checkpoint_id: bytes):
        """A version 1 packet -> its latent as a batch of one [1, M, d_z]; PacketError for another checkpoint's."""
        return decode_latent(packet, expected_checkpoint_id=checkpoint_id)[None]

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
