"""Training losses over the first K answer positions (logits [B, K, V]) and over the hidden states of the
positions a receiver reads after the latent (states [L, B, S, d])."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def k_token_ce(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
               first_token_weight: float = 1.0) -> torch.Tensor:
    """Teacher-forced CE on the first K answer tokens: logits [B, K, V], targets/mask [B, K] -> scalar.

    Position 0 (the first answer token, always present) gets `first_token_weight` extra weight.
    """
    token_ce = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")   # [B, K]
    weights = mask.float().clone()
    weights[:, 0] += first_token_weight
    return (token_ce * weights).sum() / weights.sum()


def kd_kl(student_logits: torch.Tensor, teacher_top_ids: torch.Tensor, teacher_top_logits: torch.Tensor,
          mask: torch.Tensor, tau: float) -> torch.Tensor:
    """KL(teacher || student) at temperature tau, times tau^2, over masked positions.

    student_logits [B, K, V]; the teacher as its top-k: ids and logits [B, K, k] (renormalised over
    the k); mask [B, K].
    """
    teacher_logp = F.log_softmax(teacher_top_logits.float() / tau, dim=-1)             # [B, K, k]
    student_logp = F.log_softmax(student_logits.float() / tau, dim=-1).gather(-1, teacher_top_ids)
    per_position = (teacher_logp.exp() * (teacher_logp - student_logp)).sum(-1)       # [B, K]
    return (per_position * mask).sum() / mask.sum().clamp(min=1) * tau ** 2


def state_alignment(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of RMS-normalised hidden states, over layers and masked positions.

    student / teacher [L, B, S, d] (L layers, S positions); mask [B, S] -> scalar (0 where they agree, about 2
    for unrelated states). The RMS normalisation keeps a layer's few large dimensions from dominating.
    """
    def unit(states: torch.Tensor) -> torch.Tensor:
        states = states.float()
        return states * torch.rsqrt(states.pow(2).mean(-1, keepdim=True) + 1e-6)

    per_position = (unit(student) - unit(teacher)).pow(2).mean(-1)                   # [L, B, S]
    weights = mask.float()[None].expand_as(per_position)
    return (per_position * weights).sum() / weights.sum().clamp(min=1)
