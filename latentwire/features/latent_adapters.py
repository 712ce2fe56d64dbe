"""Latent adapters: gated cross-attention blocks inside the receiver, attending to the latent."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from latentwire.features.base import Feature, decoder_layers
from latentwire.llm.loader import Receiver


class GatedCrossAttention(nn.Module):
    """h [B, T, d] + tanh(gate) * CrossAttn(h -> memory [B, M, d]); the gate starts at 0 (an exact no-op)."""

    def __init__(self, d_model: int, heads: int):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.attention = nn.MultiheadAttention(d_model, heads, batch_first=True)
        self.gate = nn.Parameter(torch.zeros(()))

    def forward(self, hidden: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        query = self.norm(hidden.float())
        memory = memory.float()
        attended = self.attention(query, memory, memory, need_weights=False)[0]
        return hidden + (torch.tanh(self.gate) * attended).to(hidden.dtype)


class LatentAdapters(Feature):
    """Blocks after chosen decoder layers of each receiver, attached by forward hooks; they act only
    inside `reading` (the memory is that receiver's latent embeddings)."""

    name = "latent_adapters"

    def __init__(self, config, receivers: dict[str, Receiver]):
        super().__init__()
        self.blocks = nn.ModuleDict()
        self._memory: dict[str, torch.Tensor | None] = {}
        for name, receiver in receivers.items():
            layers = decoder_layers(receiver.model)
            chosen = config.layers or list(range(config.every - 1, len(layers), config.every))
            if any(i >= len(layers) for i in chosen):
                raise ValueError(f"latent_adapters.layers {chosen} out of range for receiver {name!r} "
                                 f"({len(layers)} layers)")
            d_model = receiver.model.config.hidden_size
            heads = config.heads if d_model % config.heads == 0 else 1
            self.blocks[name] = nn.ModuleDict({str(i): GatedCrossAttention(d_model, heads) for i in chosen})
            for i in chosen:
                layers[i].register_forward_hook(self._hook(name, str(i)))   # inert outside `reading`

    def receiver_parameters(self, receiver: str) -> Iterator[nn.Parameter]:
        yield from self.blocks[receiver].parameters()

    def _hook(self, receiver: str, layer: str):
        def apply(module, args, output):
            memory = self._memory.get(receiver)
            if memory is None:
                return output
            block = self.blocks[receiver][layer]
            if isinstance(output, tuple):
                return (block(output[0], memory), *output[1:])
            return block(output, memory)
        return apply

    @contextmanager
    def reading(self, receiver: str, embeds: torch.Tensor) -> Iterator[None]:
        previous = self._memory.get(receiver)
        self._memory[receiver] = embeds if embeds.shape[1] else None   # an empty latent: nothing to attend to
        try:
            yield
        finally:
            self._memory[receiver] = previous
