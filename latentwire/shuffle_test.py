"""The shuffled-latent test: does a latent carry information about its own example?

For a target (the first K answer tokens in training, the gold answer in evaluation) it compares the
receiver's NLL in bits given the example's own latent, the latent of another example of the same
batch (rolled by one) and no latent at all:

    bits_specific = bits(shuffled) - bits(own)    information specific to the example (0 = collapse)
    bits_prior    = bits(none) - bits(shuffled)   what any latent teaches: a constant soft prompt
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LN2 = math.log(2)


def target_bits(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-example NLL in bits of the masked targets: logits [B, K, V], targets/mask [B, K] -> [B]."""
    nats = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")      # [B, K]
    return (nats * mask).sum(-1) / LN2


def summarize(own: torch.Tensor, shuffled: torch.Tensor, none: torch.Tensor) -> dict[str, float]:
    """Mean bits per example under each condition, and the two differences."""
    own_, shuffled_, none_ = own.mean().item(), shuffled.mean().item(), none.mean().item()
    return {"bits_own": own_, "bits_shuffled": shuffled_, "bits_none": none_,
            "bits_specific": shuffled_ - own_, "bits_prior": none_ - shuffled_}


def rolled(batch: torch.Tensor) -> torch.Tensor:
    """Each example paired with the next one's latent: [B, ...] rolled by one along the batch."""
    return torch.roll(batch, shifts=1, dims=0)


CONDITIONS = {"own": lambda latent: latent, "shuffled": rolled, "none": lambda latent: latent[:, :0]}
"""The latent [B, M, d] each example is read with under each condition of the test (none: M = 0)."""
