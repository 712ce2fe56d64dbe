"""Merging k tokens a position from decoder layer L on, instead of at the embeddings alone.

The receiver reads its prompt prefix and the packet's context a token a position through its first L decoder
layers (a side pass, stopped at layer L); the context's states there, averaged over each group of k consecutive
tokens, take the place of the merged positions' states at layer L of the reading itself. Layers below L read
the learned merge of the embeddings as before (what the question's lower layers attend to); layers L and up
read M = ceil(T / k) positions whose states already hold what the first L layers made of every token. The
receiver's cost: L layers over T tokens more than the merged reading (receiver time counts it).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from latentwire.adapters.token_merge import gather_groups, group_tokens, masked_mean
from latentwire.errors import ConfigError
from latentwire.features.base import decoder_layers


@dataclass
class LayerStates:
    """States [M, d] that replace, at the output of decoder layer `layer` - 1 (the input of layer `layer`), the
    M prompt positions from `start` on (positions of the unpadded prompt)."""

    layer: int
    start: int
    states: torch.Tensor


class _Stopped(Exception):
    """Raised by the side pass's hook once the layer it needs has run."""


def check_layer(model: torch.nn.Module, layer: int, field: str = "eval.merge_layer") -> None:
    """Raise ConfigError (naming `field`) unless 1 <= `layer` < the model's number of decoder layers."""
    count = len(decoder_layers(model))
    if not 1 <= layer < count:
        raise ConfigError(f"{field}={layer}: this receiver has {count} decoder layers; allowed 1 to {count - 1}")


@torch.no_grad()
def states_after(model: torch.nn.Module, embeds: torch.Tensor, layer: int) -> torch.Tensor:
    """inputs_embeds [B, T, d] (unpadded) -> the hidden states after the first `layer` decoder layers [B, T, d];
    the layers above are not run."""
    check_layer(model, layer)
    caught: list[torch.Tensor] = []

    def stop(module, args, output):
        caught.append(output[0] if isinstance(output, tuple) else output)
        raise _Stopped

    handle = decoder_layers(model)[layer - 1].register_forward_hook(stop)
    try:
        model(inputs_embeds=embeds, use_cache=False)
    except _Stopped:
        pass
    finally:
        handle.remove()
    return caught[0]


Pool = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""groups of states [B, M, g, d] and their members [B, M, g] -> one state a group [B, M, d]."""


def pooled_states(states: torch.Tensor, k: int, pool: Pool = masked_mean) -> torch.Tensor:
    """states [T, d] -> each group of k consecutive states pooled by `pool` (default their mean)
    [ceil(T / k), d] (the last group may be short), the groups of a uniform token reading."""
    mask = torch.ones(1, states.shape[0], dtype=torch.long, device=states.device)
    groups, members = group_tokens(states[None], mask, k)
    pooled = pool(groups, members)[0]
    assert pooled.shape[0] == math.ceil(states.shape[0] / k)
    return pooled


def context_layer_states(model: torch.nn.Module, prefix: torch.Tensor, context: torch.Tensor, k: int,
                         layer: int, index: torch.Tensor | None = None, pool: Pool = masked_mean) -> LayerStates:
    """The prompt prefix's embeddings [P, d] and the context's own token embeddings [T, d] (k = 1) ->
    the context's states after `layer` decoder layers (no gradient), pooled by `pool` (default their mean; a
    reader's learned pool gets its gradient here) k to a position or, given `index` [M, g] (a balanced_layout
    row), over its groups: LayerStates at start P.
    Run inside the receiver features' reading (LoRA on), as the reading itself is."""
    states = states_after(model, torch.cat([prefix, context.to(prefix.dtype)])[None], layer)[0]
    states = states[prefix.shape[0]:].float()
    if index is None:
        return LayerStates(layer, prefix.shape[0], pooled_states(states, k, pool))
    groups, members = gather_groups(states[None], index[None].to(states.device))
    present = members[0].sum(1) > 0
    return LayerStates(layer, prefix.shape[0], pool(groups, members)[0][present])


@contextmanager
def replacing(model: torch.nn.Module, given: list[LayerStates | None], offsets: list[int]) -> Iterator[None]:
    """While inside, the first forward of `model` over more than one position puts each row b's given states
    at positions offsets[b] + start (the row's left padding, less what a cache already holds) of decoder
    layer `layer`'s input; later forwards (decoding, scoring) read them from the cache. All rows give states
    at one layer, or none does."""
    if all(g is None for g in given):
        yield
        return
    if any(g is None for g in given) or len({g.layer for g in given}) > 1:
        raise ValueError("a batch mixes readings with and without layer states, or at different layers")
    pending = [True]

    def put(module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        if not pending[0] or hidden.shape[1] == 1:
            return None
        pending[0] = False
        hidden = hidden.clone()
        for row, (states, offset) in enumerate(zip(given, offsets)):
            at = offset + states.start
            hidden[row, at:at + states.states.shape[0]] = states.states.to(hidden.dtype)
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handle = decoder_layers(model)[given[0].layer - 1].register_forward_hook(put)
    try:
        yield
    finally:
        handle.remove()


def batch_layer_states(model: torch.nn.Module, prefix: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor,
                       k: int, layer: int, layout: torch.Tensor | None = None, pool: Pool = masked_mean
                       ) -> torch.Tensor:
    """`context_layer_states` for a batch: prefix embeddings [P, d], each row's own token embeddings [B, T, d]
    with `mask` [B, T] (its real tokens, packed from the left) -> pooled states [B, ceil(T / k), d], each row's
    first ceil(T_b / k) real (the rest zero): the positions of a uniform reading at k; given `layout`
    [B, M, g] (balanced_layout), pooled over its groups instead [B, M, d]."""
    count = math.ceil(tokens.shape[1] / k) if layout is None else layout.shape[1]
    rows = []
    for row in range(tokens.shape[0]):
        index = None if layout is None else layout[row]
        pooled = context_layer_states(model, prefix, tokens[row][mask[row] > 0], k, layer, index, pool).states
        rows.append(torch.cat([pooled, pooled.new_zeros(count - pooled.shape[0], pooled.shape[1])]))
    return torch.stack(rows).to(tokens.dtype)


def rows_of(layer: int, start: int, states: torch.Tensor, mask: torch.Tensor | None) -> list[LayerStates] | None:
    """Padded states [B, M, d] whose real positions `mask` [B, M] marks (None: all) -> one LayerStates a row,
    placed at `start`; None when M = 0 (a reading without a latent)."""
    if states.shape[1] == 0:
        return None
    counts = [states.shape[1]] * states.shape[0] if mask is None else mask.sum(1).tolist()
    return [LayerStates(layer, start, row[:int(count)]) for row, count in zip(states, counts)]
