"""Per-receiver adapters: latent [B, M, d_z] -> receiver embeddings [B, M, d_model], RMS-calibrated."""
from __future__ import annotations

import torch
from torch import nn


def embedding_rms(embedding_weight: torch.Tensor) -> float:
    """Root-mean-square of a receiver's input-embedding table [V, d]: the scale its inputs live at."""
    return embedding_weight.float().pow(2).mean().sqrt().item()


def rms_calibrate(x: torch.Tensor, target_rms: float | torch.Tensor) -> torch.Tensor:
    """x [B, M, d] rescaled so that each example's RMS (over its M x d values) equals target_rms."""
    rms = x.pow(2).mean(dim=(1, 2), keepdim=True).add(1e-8).sqrt()
    return x * (target_rms / rms)


class Adapter(nn.Module):
    """LayerNorm -> MLP to the receiver width, then per-example RMS calibration to `target_rms`."""

    def __init__(self, d_z: int, d_model: int, target_rms: float, hidden: int = 0):
        super().__init__()
        hidden = hidden or 2 * d_model
        self.net = nn.Sequential(nn.LayerNorm(d_z), nn.Linear(d_z, hidden), nn.GELU(), nn.Linear(hidden, d_model))
        self.register_buffer("target_rms", torch.tensor(float(target_rms)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, M, d_z] -> [B, M, d_model] whose RMS over each example equals the receiver's embedding RMS."""
        return rms_calibrate(self.net(z), self.target_rms)
