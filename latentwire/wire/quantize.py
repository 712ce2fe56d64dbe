"""Symmetric per-group quantisation of a latent tensor, plus its differentiable twin.

A latent `z` of shape [M, d] is flattened row-major to M*d values and cut into contiguous
groups of `group_size` values (the last group is zero-padded). Each group gets one scale,
stored as float16, and each value one signed integer code in [-qmax, qmax] with
qmax = 2**(bits-1) - 1. Bit width 16 means plain float16 values and no scales.

The scale is max|x| / qmax rounded *up* to the next float16, so no code ever needs
clipping and the reconstruction error of every value is at most scale / 2. `quantize`
therefore refuses a latent with a value beyond `max_value(bits)` (qmax x 65504, the
largest float16 scale; 65504 itself for bits=16) instead of clipping it. `fake_quantize`,
the training-time twin, never raises: it caps the scale at the largest float16 (and
saturates float16 values) and is otherwise the very same arithmetic, so a model trained
with it sees bit-for-bit what the wire delivers.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

BIT_WIDTHS = (16, 8, 6, 4)
"""Supported bit widths; 16 means float16 values, the others integer codes."""
MAX_GROUP_SIZE = 4096
FP16_MAX = 65504.0


@dataclass
class QuantizedLatent:
    """One example's quantised latent.

    `codes` is 1-D of length M*d (row-major): int8 codes in [-qmax, qmax] for integer bit
    widths, float16 values for bits=16. `scales` is float16 of length n_groups, or None
    for bits=16.
    """

    shape: tuple[int, int]
    bits: int
    group_size: int
    codes: Tensor
    scales: Tensor | None

    @property
    def n_groups(self) -> int:
        """Number of groups of `group_size` values covering the M*d values."""
        return n_groups(self.shape[0] * self.shape[1], self.group_size)


def check_params(bits: int, group_size: int) -> None:
    """Raise ValueError unless `bits` is in BIT_WIDTHS and 1 <= group_size <= 4096."""
    if bits not in BIT_WIDTHS:
        raise ValueError(f"unsupported bit width {bits!r}; choose one of {BIT_WIDTHS}")
    if not isinstance(group_size, int) or not 1 <= group_size <= MAX_GROUP_SIZE:
        raise ValueError(f"group size must be an integer in 1..{MAX_GROUP_SIZE}, got {group_size!r}")


def qmax_for(bits: int) -> int:
    """Largest code magnitude for an integer bit width: 2**(bits-1) - 1."""
    return 2 ** (bits - 1) - 1


def max_value(bits: int) -> float:
    """Largest magnitude a latent value may have at `bits` without clipping: 65504 for float16, else qmax x 65504."""
    return FP16_MAX if bits == 16 else qmax_for(bits) * FP16_MAX


def n_groups(n_values: int, group_size: int) -> int:
    """Number of groups needed for `n_values` values: ceil(n_values / group_size)."""
    return -(-n_values // group_size)


def _to_groups(z: Tensor, group_size: int) -> Tensor:
    """[..., M, d] -> float32 [..., G, group_size]: flatten each example, zero-pad, split."""
    flat = z.float().flatten(start_dim=-2)
    flat = F.pad(flat, (0, (-flat.shape[-1]) % group_size))
    return flat.unflatten(-1, (-1, group_size))


def _from_groups(groups: Tensor, m: int, d: int) -> Tensor:
    """[..., G, group_size] -> [..., M, d]: flatten, drop the padding, reshape."""
    flat = groups.flatten(start_dim=-2)[..., : m * d]
    return flat.unflatten(-1, (m, d))


def _fp16_scale(amax: Tensor, qmax: int) -> Tensor:
    """Per-group scale amax / qmax [..., G] as float16, rounded up, capped at FP16_MAX."""
    exact = (amax / qmax).clamp(max=FP16_MAX)
    s16 = exact.half()
    # For positive float16 values the next representable one up is the bit pattern + 1.
    bumped = (s16.view(torch.int16) + 1).view(torch.float16)
    return torch.where(s16.float() < exact, bumped, s16)


def _codes_and_scales(groups: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    """float32 [..., G, gs] -> (float32 integer-valued codes [..., G, gs], fp16 scales [..., G])."""
    qmax = qmax_for(bits)
    scales = _fp16_scale(groups.abs().amax(dim=-1), qmax)
    s = scales.float().unsqueeze(-1)
    nonzero = s > 0
    q = torch.round(groups / torch.where(nonzero, s, torch.ones_like(s)))
    q = torch.where(nonzero, q.clamp(-qmax, qmax), torch.zeros_like(q))
    return q, scales


def _to_fp16(z: Tensor) -> Tensor:
    """Float16 copy of z, saturating values beyond the float16 range instead of giving inf."""
    return z.float().clamp(-FP16_MAX, FP16_MAX).half()


def quantize(z: Tensor, bits: int, group_size: int) -> QuantizedLatent:
    """Quantise one latent z [M, d] into a QuantizedLatent (codes [M*d], scales [n_groups])."""
    check_params(bits, group_size)
    if z.ndim != 2 or z.numel() == 0:
        raise ValueError(f"latent must have shape [M, d] with M, d >= 1, got {tuple(z.shape)}")
    if not torch.isfinite(z).all():
        raise ValueError("latent contains NaN or infinite values")
    largest = float(z.detach().abs().max())
    if largest > max_value(bits):
        raise ValueError(f"latent value of magnitude {largest:.6g} is beyond the largest a {bits}-bit packet carries "
                         f"without clipping ({max_value(bits):.6g}); scale the latent down or use more bits")
    m, d = z.shape
    z = z.detach()
    if bits == 16:
        return QuantizedLatent((m, d), bits, group_size, _to_fp16(z).flatten(), None)
    q, scales = _codes_and_scales(_to_groups(z, group_size), bits)
    codes = q.flatten()[: m * d].to(torch.int8)
    return QuantizedLatent((m, d), bits, group_size, codes, scales)


def dequantize(q: QuantizedLatent) -> Tensor:
    """Reconstruct the float32 latent [M, d] from a QuantizedLatent."""
    m, d = q.shape
    if q.bits == 16:
        return q.codes.float().reshape(m, d)
    codes = q.codes.float().reshape(m, d)
    groups = _to_groups(codes, q.group_size)
    return _from_groups(groups * q.scales.float().unsqueeze(-1), m, d)


def fake_quantize(z: Tensor, bits: int, group_size: int) -> Tensor:
    """Quantise-dequantise z [..., M, d] per example, with a straight-through gradient.

    The forward value equals `dequantize(quantize(z_i))` for every example z_i [M, d]
    (cast back to z's dtype); the backward pass treats the operation as the identity.
    """
    check_params(bits, group_size)
    if z.ndim < 2:
        raise ValueError(f"latent must have shape [..., M, d], got {tuple(z.shape)}")
    with torch.no_grad():
        if bits == 16:
            deq = _to_fp16(z).float()
        else:
            q, scales = _codes_and_scales(_to_groups(z, group_size), bits)
            deq = _from_groups(q * scales.float().unsqueeze(-1), z.shape[-2], z.shape[-1])
    # deq + (z - z) keeps deq's exact value while routing the gradient straight to z.
    return deq.to(z.dtype) + (z - z.detach())
