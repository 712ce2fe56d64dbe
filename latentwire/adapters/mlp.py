"""The MLP adapter: latent [B, M, d_z] -> receiver embeddings [B, M, d_model], then per-example RMS calibration."""
from __future__ import annotations

import torch
from torch import nn


def embedding_rms(embedding_weight: torch.Tensor) -> float:
    """Root-mean-square of a receiver's input-embedding table [V, d]: the scale its inputs live at."""
    return embedding_weight.float().pow(2).mean().sqrt().item()


def rms_calibrate(x: torch.Tensor, target_rms: float | torch.Tensor) -> torch.Tensor:
    """x [B, M, d] rescaled so that each example's RMS (over its M x d values) equals target_rms, in float32
    (the mean of squares over thousands of values loses digits in bfloat16)."""
    x = x.float()
    rms = x.pow(2).mean(dim=(1, 2), keepdim=True).add(1e-8).sqrt()
    return x * (target_rms / rms)


class Adapter(nn.Module):
    """LayerNorm -> MLP to the receiver width (plus, optionally, a linear skip path that a warm start sets),
    then per-example RMS calibration to `target_rms`."""

    def __init__(self, d_z: int, d_model: int, target_rms: float, hidden: int = 0, linear_skip: bool = False):
        super().__init__()
        hidden = hidden or 2 * d_model
        self.net = nn.Sequential(nn.LayerNorm(d_z), nn.Linear(d_z, hidden), nn.GELU(), nn.Linear(hidden, d_model))
        self.skip = nn.Linear(d_z, d_model) if linear_skip else None
        self.register_buffer("target_rms", torch.tensor(float(target_rms)))

    @torch.no_grad()
    def warm_start_(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Start as the linear map z -> weight z + bias ([d_model, d_z], [d_model]): the MLP's output is zeroed."""
        self.skip.weight.copy_(weight)
        self.skip.bias.copy_(bias)
        self.net[-1].weight.zero_()
        self.net[-1].bias.zero_()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, M, d_z] -> [B, M, d_model] whose RMS over each example equals the receiver's embedding RMS."""
        out = self.net(z) if self.skip is None else self.net(z) + self.skip(z)
        return rms_calibrate(out, self.target_rms)
