"""The receiver side of token-code latents: each slot's k codes decoded into this receiver's own token
embeddings (a softmax over the shared tokens' codes), merged at one position, RMS-calibrated."""
from __future__ import annotations

import math

import torch
from torch import nn

from latentwire.adapters.mlp import rms_calibrate
from latentwire.llm.loader import Receiver
from latentwire.precision import full_precision


def typical_neighbour_distance(codes: torch.Tensor, sample: int = 512) -> float:
    """Median squared distance from a code to its nearest other code (over a fixed sample of codes)."""
    rows = codes[torch.randperm(len(codes), generator=torch.Generator().manual_seed(0))[:sample]]
    distance = torch.cdist(rows, codes).pow(2)
    distance[distance == 0] = float("inf")          # each sampled code itself
    return distance.min(1).values.median().item()


class TokenCodeAdapter(nn.Module):
    """Z [B, M, d_z] -> for each of a slot's k token codes, the softmax(-beta * squared distance to each
    shared token's code) mixture of this receiver's embeddings of those tokens; the k embeddings merged by
    a learned per-dimension weighted sum (k > 1); then per-example RMS calibration."""

    def __init__(self, codes: torch.Tensor, token_ids: torch.Tensor, receiver: Receiver, target_rms: float,
                 tokens_per_slot: int = 1):
        super().__init__()
        self.k = tokens_per_slot
        self.codes = nn.Parameter(codes.clone())                                    # [n, d_z]
        # sharp enough that a code's nearest neighbour typically gets e^-10 of its weight, soft enough
        # that the codes still receive gradient
        self.log_beta = nn.Parameter(torch.tensor(math.log(10 / typical_neighbour_distance(codes))))
        table = receiver.model.get_input_embeddings().weight.detach().float()
        self.register_buffer("embeddings", table[token_ids.to(table.device)].clone(), persistent=False)
        self.register_buffer("target_rms", torch.tensor(float(target_rms)))
        if self.k > 1:   # the mean at first; learning the weights lets a receiver tell the k tokens apart
            self.merge = nn.Parameter(torch.full((self.k, table.shape[1]), 1 / self.k))

    def token_weights(self, z: torch.Tensor) -> torch.Tensor:
        """Token codes [..., d_z/k] -> weights [..., n] over the shared tokens (rows sum to 1)."""
        distance = (z.pow(2).sum(-1, keepdim=True) - 2 * z @ self.codes.T + self.codes.pow(2).sum(-1))
        return torch.softmax(-self.log_beta.exp() * distance, dim=-1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Z [B, M, d_z] -> [B, M, d_model] at the receiver's embedding RMS.

        Always float32, also under autocast: a code's distance to its neighbours is small, and bfloat16's
        8-bit mantissa would decode some codes to the wrong token."""
        with full_precision(z.device.type):
            z = z.float()
            tokens = z.reshape(*z.shape[:2], self.k, -1)                             # [B, M, k, d_z/k]
            embedded = self.token_weights(tokens) @ self.embeddings                 # [B, M, k, d_model]
            merged = embedded[:, :, 0] if self.k == 1 else (self.merge * embedded).sum(2)
            return rms_calibrate(merged, self.target_rms)
