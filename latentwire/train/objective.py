"""The training objective of one micro-batch: one latent, every receiver, CE + KD from one forward each."""
from __future__ import annotations

import torch

from latentwire.config import LossConfig
from latentwire.latent_inputs import answer_logits
from latentwire.llm.loader import Receiver
from latentwire.losses import k_token_ce, kd_kl
from latentwire.prompt import PromptBuilder
from latentwire.shuffle_test import rolled, summarize, target_bits
from latentwire.system import LatentWire
from latentwire.train.features import TrainItem
from latentwire.train.tasks import target_length


def pad_targets(targets: list[list[int]], K: int, pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Answer ids [B][<=K] -> (ids [B, K] right-padded with pad_id, mask [B, K])."""
    ids = torch.full((len(targets), K), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros(len(targets), K, device=device)
    for row, target in enumerate(targets):
        ids[row, :len(target)] = torch.tensor(target[:K], device=device)
        mask[row, :len(target)] = 1
    return ids, mask


def text_after_ids(system: LatentWire, builder: PromptBuilder, items: list[TrainItem]) -> list[list[int]]:
    """Per item, the ids a receiver reads after the latent (the question in context-only mode, else [])."""
    if system.config.loss.objective != "qa":   # span tasks: nothing but the latent
        return [[] for _ in items]
    texts = [system.text_after(i.example.question, i.example.context) for i in items]
    return [builder.encode(t) if t else [] for t in texts]


def batch_loss(system: LatentWire | torch.nn.Module, receivers: dict[str, Receiver], builders: dict[str, PromptBuilder],
               items: list[TrainItem], loss: LossConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss (scalar) and its parts per receiver for one micro-batch of items.

    `system` may be the LatentWire model or its distributed wrapper: only its forward is called.
    """
    per_receiver = system([item.features for item in items])                    # {name: [B, M_r, d]}
    core = getattr(system, "module", system)                                    # unwrapped from DDP
    features = core.features
    total, parts = next(iter(per_receiver.values())).new_zeros(()), {}
    for name, receiver in receivers.items():
        device = receiver.device
        pad = builders[name].stop_ids[0]
        targets, mask = pad_targets([item.targets[name] for item in items], target_length(core.config), pad, device)
        embeds = per_receiver[name].to(device)
        after = text_after_ids(core, builders[name], items)
        with features.reading(name, embeds):
            logits = answer_logits(receiver, builders[name], embeds, targets,
                                   features.kv_entries(name, embeds), after)      # [B, K, V]
        ce = k_token_ce(logits, targets, mask, loss.first_token_weight)
        total = total + loss.ce_weight * ce
        parts[f"{name}/ce"] = ce.item()
        parts[f"{name}/first_tok_acc"] = (logits[:, 0].argmax(-1) == targets[:, 0]).float().mean().item()
        if loss.kd_weight > 0 and all(name in item.teacher for item in items):
            top_ids = torch.stack([item.teacher[name][0] for item in items]).to(device)
            top_logits = torch.stack([item.teacher[name][1] for item in items]).to(device)
            kd = kd_kl(logits, top_ids, top_logits, mask, loss.kd_tau)
            total = total + loss.kd_weight * kd
            parts[f"{name}/kd"] = kd.item()
        if loss.shuffle_weight > 0 and len(items) >= 2:
            other = rolled(embeds)   # each example read with the next one's latent
            with features.reading(name, other):
                shuffled = answer_logits(receiver, builders[name], other, targets,
                                         features.kv_entries(name, other), after)
            gap = target_bits(shuffled, targets, mask) - target_bits(logits, targets, mask)      # [B] bits
            penalty = torch.relu(loss.shuffle_margin - gap).mean()
            total = total + loss.shuffle_weight * penalty
            parts[f"{name}/shuffle_gap"] = gap.mean().item()
    return total, parts


@torch.no_grad()
def shuffle_test_bits(system: LatentWire | torch.nn.Module, receivers: dict[str, Receiver],
                      builders: dict[str, PromptBuilder], items: list[TrainItem], loss: LossConfig) -> dict[str, float]:
    """The shuffled-latent test on one batch (needs >= 2 items): per receiver `name/bits_specific`,
    `name/bits_prior` (and the three NLLs) of the first K answer tokens."""
    core = getattr(system, "module", system)
    per_receiver = core([item.features for item in items])
    out: dict[str, float] = {}
    for name, receiver in receivers.items():
        device, builder = receiver.device, builders[name]
        targets, mask = pad_targets([item.targets[name] for item in items], target_length(core.config),
                                    builder.stop_ids[0], device)
        embeds = per_receiver[name].to(device)
        after = text_after_ids(core, builder, items)   # each example keeps its own question text

        def bits(latent: torch.Tensor) -> torch.Tensor:
            if latent.shape[1] == 0:   # no latent: prefix (+ question) + anchor, nothing for features to read
                return target_bits(answer_logits(receiver, builder, latent, targets, None, after), targets, mask)
            with core.features.reading(name, latent):
                logits = answer_logits(receiver, builder, latent, targets, core.features.kv_entries(name, latent),
                                       after)
            return target_bits(logits, targets, mask)

        result = summarize(bits(embeds), bits(rolled(embeds)), bits(embeds[:, :0]))
        out.update({f"{name}/{key}": value for key, value in result.items()})
    return out
