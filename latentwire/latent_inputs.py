"""How a receiver reads a latent: [prefix tokens] + latent embeddings [+ text after it] + [anchor tokens]
(+ answer tokens). The text after the latent is the question in context-only mode (encoder.input).

`reading` is the one place where the enabled receiver features act on a receiver reading a latent;
training (`answer_logits`), generation, the shuffled-latent tests and evaluation all go through it.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from latentwire.adapters.layer_merge import replacing
from latentwire.llm.cache import cache_kwarg, mask_after_entries, prefilled_cache
from latentwire.llm.loader import Receiver
from latentwire.prompt import PromptBuilder


def latent_prompt_embeds(receiver: Receiver, builder: PromptBuilder, latent: torch.Tensor) -> torch.Tensor:
    """latent [B, M, d_model] -> inputs_embeds [B, P + M + A, d_model] (prefix, latent, anchor), in the
    receiver's own precision."""
    device, batch = latent.device, latent.shape[0]
    prefix = receiver.embed(torch.tensor([builder.prefix_ids], device=device)).expand(batch, -1, -1)
    anchor = receiver.embed(torch.tensor([builder.anchor_ids], device=device)).expand(batch, -1, -1)
    return torch.cat([prefix, latent.to(prefix.dtype), anchor], dim=1)


def latent_prompt_batch(receiver: Receiver, builder: PromptBuilder, latent: torch.Tensor,
                        after: list[list[int]] | None = None,
                        latent_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """latent [B, M, d_model] (of which `latent_mask` [B, M], when given, marks each row's real positions) and
    per-example token ids to place after it -> (inputs_embeds [B, T, d_model], attention mask [B, T]),
    left-padded so that every row ends with the anchor."""
    if latent_mask is not None:
        after = after or [[] for _ in range(latent.shape[0])]
        if not bool(latent_mask.all()):
            rows = [latent[i][latent_mask[i] > 0] for i in range(latent.shape[0])]
            return _ragged_prompt_batch(receiver, builder, rows, after)
    if not after or not any(after):
        embeds = latent_prompt_embeds(receiver, builder, latent)
        return embeds, torch.ones(embeds.shape[:2], dtype=torch.long, device=latent.device)
    return _ragged_prompt_batch(receiver, builder, list(latent), after)


def _ragged_prompt_batch(receiver: Receiver, builder: PromptBuilder, latents: list[torch.Tensor],
                         after: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows prefix + latents[i] [M_i, d] + after[i] + anchor, left-padded: (embeds [B, T, d], mask [B, T])."""
    device = latents[0].device
    prefix = receiver.embed(torch.tensor([builder.prefix_ids], device=device))[0]
    anchor = receiver.embed(torch.tensor([builder.anchor_ids], device=device))[0]
    dtype = prefix.dtype
    rows = [torch.cat([prefix, latent.to(dtype), receiver.embed(torch.tensor([ids], device=device))[0].to(dtype)
                       if ids else prefix[:0], anchor]) for latent, ids in zip(latents, after)]
    length = max(r.shape[0] for r in rows)
    embeds = prefix.new_zeros(len(rows), length, prefix.shape[-1])
    mask = torch.zeros(len(rows), length, dtype=torch.long, device=device)
    for i, row in enumerate(rows):
        embeds[i, length - row.shape[0]:] = row
        mask[i, length - row.shape[0]:] = 1
    return embeds, mask


@contextmanager
def reading(receiver: Receiver, features, latent: torch.Tensor, inputs: dict) -> Iterator[dict]:
    """Model keyword arguments for receiver `receiver` reading latent [B, M, d_model] (M may be 0) in a
    prompt given by `inputs` (inputs_embeds or input_ids [B, T], optionally attention_mask [B, T] and
    position_ids), with the enabled receiver `features` (a ReceiverFeatures, or None) applied: their
    key/value entries go into a cache placed before the prompt (mask and positions extended over them) and
    their other effects (LoRA, hooks) are active for as long as the block runs: prefill, decoding, scoring."""
    if features is None:
        yield dict(inputs)
        return
    with features.reading(receiver.name, latent):
        kv = features.kv_entries(receiver.name, latent)
        if kv is None:
            yield dict(inputs)
            return
        first = inputs.get("input_ids", inputs.get("inputs_embeds"))
        mask = inputs.get("attention_mask")
        mask = torch.ones(first.shape[:2], dtype=torch.long, device=first.device) if mask is None else mask
        full, positions = mask_after_entries(mask, kv[0][0].shape[2])
        yield {**inputs, "attention_mask": full, "position_ids": positions, "use_cache": True,
               **cache_kwarg(receiver.model, prefilled_cache(receiver.model, kv))}


def answer_logits(receiver: Receiver, builder: PromptBuilder, latent: torch.Tensor, targets: torch.Tensor,
                  features=None, after: list[list[int]] | None = None,
                  latent_mask: torch.Tensor | None = None, layer_states: list | None = None) -> torch.Tensor:
    """Teacher-forced logits [B, K, V] for the K answer targets [B, K] given latent [B, M, d_model].

    Logit k predicts targets[:, k]: position 0 is read after the anchor (t=0), the others after
    answer tokens 0..K-2. Only these K positions go through the LM head. `features` (a
    ReceiverFeatures, or None) act through `reading`; `after` are per-example ids placed between the
    latent and the anchor (context-only mode); `latent_mask` [B, M] marks the real latent positions of rows of
    different lengths (token packets); `layer_states` (one LayerStates a row, or None) are put in at their
    decoder layer (latentwire.adapters.layer_merge).
    """
    return _answer_forward(receiver, builder, latent, targets, features, after, latent_mask, False, layer_states)[0]


def answer_states(receiver: Receiver, builder: PromptBuilder, latent: torch.Tensor, targets: torch.Tensor,
                  features=None, after: list[list[int]] | None = None, latent_mask: torch.Tensor | None = None,
                  layer_states: list | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`answer_logits`, and the receiver's hidden states after each layer at the positions read after the
    latent (the ids `after`, the anchor and the K - 1 answer inputs): (logits [B, K, V], states [L, B, S, d],
    which of the S positions each row has [B, S]; rows end together, so the last S positions of a reading at
    one k line up with those of the same example read at another)."""
    return _answer_forward(receiver, builder, latent, targets, features, after, latent_mask, True, layer_states)


def _answer_forward(receiver, builder, latent, targets, features, after, latent_mask, states: bool,
                    layer_states=None):
    """(logits [B, K, V], states [L, B, S, d] or None, suffix mask [B, S] or None): see answer_states."""
    K = targets.shape[1]
    prompt, mask = latent_prompt_batch(receiver, builder, latent, after, latent_mask)
    padded = not bool(mask.all())
    inputs = {"inputs_embeds": torch.cat([prompt, receiver.embed(targets[:, :K - 1]).to(prompt.dtype)], dim=1)}
    if padded:   # rows of different lengths: the mask and positions say where each one starts
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], K - 1)], dim=1)
        inputs.update(attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0))
    keep = torch.arange(prompt.shape[1] - 1, prompt.shape[1] - 1 + K, device=latent.device)
    offsets = (mask == 0).sum(1).tolist() if layer_states else []
    with reading(receiver, features, latent, inputs) as kwargs, \
            replacing(receiver.model, layer_states or [], offsets):
        out = receiver.model(**{"use_cache": False, **kwargs}, logits_to_keep=keep, output_hidden_states=states)
    if not states:
        return out.logits, None, None
    lengths = torch.tensor([len(ids) for ids in (after or [[]] * latent.shape[0])], device=latent.device)
    lengths = lengths + len(builder.anchor_ids) + K - 1                                  # [B]
    span = int(lengths.max())
    suffix = torch.arange(span, device=latent.device)[None] >= span - lengths[:, None]   # [B, S]
    return out.logits, torch.stack([h[:, -span:] for h in out.hidden_states[1:]]), suffix
