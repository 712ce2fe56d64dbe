"""Training losses over the first K answer positions; every function takes logits [B, K, V]."""
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
