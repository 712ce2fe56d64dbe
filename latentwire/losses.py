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
    """Mean squared difference of hidden states in units of the teacher's spread, over layers, masked positions
    and dimensions.

    student / teacher [L, B, S, d] (L layers, S positions); mask [B, S] -> scalar (1 where the student is off by
    one standard deviation everywhere). Each layer's dimensions are scaled by the teacher's standard deviation
    over the masked positions (no gradient), so that the few dimensions of very large activation, alike in
    every reading, do not hide the rest.
    """
    student, teacher = student.float(), teacher.float()
    chosen = mask.bool()
    spread = teacher[:, chosen].std(1, keepdim=True).detach().clamp(min=1e-4)      # [L, 1, d]
    return ((student[:, chosen] - teacher[:, chosen]) / spread).pow(2).mean()
