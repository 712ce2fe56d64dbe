"""The training objective of one micro-batch: one latent, every receiver, CE + KD from one forward each."""
from __future__ import annotations

import torch

from latentwire.config import LossConfig
from latentwire.losses import k_token_ce, kd_kl, state_alignment
from latentwire.shuffle_test import summarize, target_bits
from latentwire.system import LatentWire
from latentwire.train.features import TrainItem


def pad_targets(targets: list[list[int]], K: int, pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Answer ids [B][<=K] -> (ids [B, K] right-padded with pad_id, mask [B, K])."""
    ids = torch.full((len(targets), K), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros(len(targets), K, device=device)
    for row, target in enumerate(targets):
        ids[row, :len(target)] = torch.tensor(target[:K], device=device)
        mask[row, :len(target)] = 1
    return ids, mask


def batch_targets(system: LatentWire, items: list[TrainItem]) -> tuple[dict, dict, dict]:
    """Per receiver: target ids [B, K], their mask [B, K] and the ids each example reads after the latent
    (the task's text after it, e.g. the question in context-only mode)."""
    K = system.task.target_length(system.config.loss)
    targets, masks, after = {}, {}, {}
    for name, receiver in system.receivers.items():
        builder = system.builders[name]
        targets[name], masks[name] = pad_targets([i.targets[name] for i in items], K, builder.stop_ids[0],
                                                 receiver.device)
        texts = [system.task.text_after(system, i.example) for i in items]
        after[name] = [builder.encode(t) if t else [] for t in texts]
    return targets, masks, after


@torch.no_grad()
def self_teacher(system: LatentWire, items: list[TrainItem], targets: dict, after: dict,
                 states: bool = False) -> dict[str, dict]:
    """A token reader's own reading of the same packets at k = 1, the teacher of loss.self_kd_weight and
    loss.self_states_weight: {receiver: {"own": answer logits [B, K, V], and with `states` "states": (hidden
    states after the latent [L, B, S, d], their mask [B, S])}}; {} when this step already reads at k = 1,
    carries no tokens or is not QA (a span task's teacher at k = 1 would copy its own span)."""
    if not system.encoder.carries_tokens or system.k == 1 or not system.task.answers_questions:
        return {}
    was = system.k, system.focus
    system.k, system.focus = 1, False
    try:
        read = system([item.features for item in items], targets, after, ("own",), states=states)
    finally:
        system.k, system.focus = was
    return read


def batch_loss(system: LatentWire | torch.nn.Module, items: list[TrainItem],
               loss: LossConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss (scalar) and its parts per receiver for one micro-batch of items.

    `system` may be the LatentWire model or its distributed wrapper: only its forward is called.
    """
    core = getattr(system, "module", system)                                    # unwrapped from DDP
    targets, masks, after = batch_targets(core, items)
    shuffle = loss.shuffle_weight > 0 and len(items) >= 2
    taught = self_teacher(core, items, targets, after, loss.self_states_weight > 0) if (
        loss.self_kd_weight > 0 or loss.self_states_weight > 0) else {}
    logits = system([item.features for item in items], targets, after, ("own", "shuffled") if shuffle else ("own",),
                    states=bool(taught) and loss.self_states_weight > 0)  # {name: {condition: [B, K, V]}}
    total, parts = next(iter(logits.values()))["own"].new_zeros(()), {}
    for name, read in logits.items():
        own, ids, mask = read["own"], targets[name], masks[name]
        ce = k_token_ce(own, ids, mask, loss.first_token_weight)
        total = total + loss.ce_weight * ce
        parts[f"{name}/ce"] = ce.item()
        parts[f"{name}/first_tok_acc"] = (own[:, 0].argmax(-1) == ids[:, 0]).float().mean().item()
        if loss.kd_weight > 0 and all(name in item.teacher for item in items):
            top_ids = torch.stack([item.teacher[name][0] for item in items]).to(own.device)
            top_logits = torch.stack([item.teacher[name][1] for item in items]).to(own.device)
            kd = kd_kl(own, top_ids, top_logits, mask, loss.kd_tau)
            total = total + loss.kd_weight * kd
            parts[f"{name}/kd"] = kd.item()
        if name in taught and loss.self_kd_weight > 0:
            top_logits, top_ids = taught[name]["own"].topk(loss.kd_top_k, dim=-1)
            self_kd = kd_kl(own, top_ids, top_logits, mask, loss.kd_tau)
            total = total + loss.self_kd_weight * self_kd
            parts[f"{name}/self_kd"] = self_kd.item()
        if name in taught and loss.self_states_weight > 0:   # the student's positions after the latent as k = 1's
            (student, suffix), teacher = read["states"], taught[name]["states"][0]
            aligned = state_alignment(student, teacher, suffix)
            total = total + loss.self_states_weight * aligned
            parts[f"{name}/self_states"] = aligned.item()
        if shuffle:   # each example read with another one's latent: a hinge on the gap in bits
            gap = target_bits(read["shuffled"], ids, mask) - target_bits(own, ids, mask)      # [B] bits
            total = total + loss.shuffle_weight * torch.relu(loss.shuffle_margin - gap).mean()
            parts[f"{name}/shuffle_gap"] = gap.mean().item()
    return total, parts


@torch.no_grad()
def shuffle_test_bits(system: LatentWire | torch.nn.Module, items: list[TrainItem]) -> dict[str, float]:
    """The shuffled-latent test on one batch (needs >= 2 items): per receiver `name/bits_specific`,
    `name/bits_prior` (and the three NLLs) of the first K answer tokens."""
    core = getattr(system, "module", system)
    targets, masks, after = batch_targets(core, items)   # each example keeps its own question text
    logits = core([item.features for item in items], targets, after, ("own", "shuffled", "none"))
    out: dict[str, float] = {}
    for name, read in logits.items():
        bits = {c: target_bits(read[c], targets[name], masks[name]) for c in read}
        result = summarize(bits["own"], bits["shuffled"], bits["none"])
        out.update({f"{name}/{key}": value for key, value in result.items()})
    return out
