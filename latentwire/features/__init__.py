"""Optional receiver-side features, one registry: name -> module class, each with its config section
`features.<name>`. `ReceiverFeatures` runs the enabled ones around a receiver's forward."""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Iterator

import torch
from torch import nn

from latentwire.features.base import KV, Feature
from latentwire.features.kv_writer import Coprocessor, DeepPrefix
from latentwire.features.latent_adapters import LatentAdapters
from latentwire.features.lora import Lora

FEATURES: dict[str, type[Feature]] = {cls.name: cls for cls in (Lora, DeepPrefix, LatentAdapters, Coprocessor)}


class ReceiverFeatures(nn.Module):
    """The enabled features of a LatentWire model (an empty ModuleDict when none is on)."""

    def __init__(self, features_config, receivers: dict):
        super().__init__()
        self.enabled = nn.ModuleDict({name: FEATURES[name](getattr(features_config, name), receivers)
                                      for name in features_config.enabled()})

    @property
    def weights_only(self) -> bool:
        """Whether every enabled feature acts only through the receiver's weights (Feature.weights_only)."""
        return all(feature.weights_only for feature in self.enabled.values())

    def receiver_parameters(self, receiver: str) -> Iterator[nn.Parameter]:
        """Every enabled feature's parameters that belong to `receiver` alone (Feature.receiver_parameters)."""
        for feature in self.enabled.values():
            yield from feature.receiver_parameters(receiver)

    def kv_entries(self, receiver: str, embeds: torch.Tensor) -> KV | None:
        """All features' extra cache entries for `receiver` from its latent embeds [B, M, d_model],
        concatenated per layer (None if there are none, and always for an empty latent, M = 0)."""
        if embeds.shape[1] == 0:
            return None
        parts = [kv for f in self.enabled.values() if (kv := f.kv_entries(receiver, embeds)) is not None]
        if not parts:
            return None
        return [(torch.cat([p[layer][0] for p in parts], dim=2), torch.cat([p[layer][1] for p in parts], dim=2))
                for layer in range(len(parts[0]))]

    @contextmanager
    def reading(self, receiver: str, embeds: torch.Tensor) -> Iterator[None]:
        """Every feature's `reading` context for `receiver` reading latent embeds [B, M, d_model] (M may be 0:
        weight features such as LoRA still act, those that read the latent do not)."""
        with ExitStack() as stack:
            for feature in self.enabled.values():
                stack.enter_context(feature.reading(receiver, embeds))
            yield

    @contextmanager
    def plain(self, receiver: str) -> Iterator[None]:
        """`receiver` behaves as the frozen model alone (text teacher, text baselines)."""
        with ExitStack() as stack:
            for feature in self.enabled.values():
                stack.enter_context(feature.plain(receiver))
            yield

    @contextmanager
    def folded(self, receiver: str) -> Iterator[None]:
        """Every weights-only feature folded into `receiver`'s weights (Feature.folded), as a server that hosts
        one reader keeps them; refused unless all are weights-only."""
        if not self.weights_only:
            raise ValueError("only features that act through the weights alone (LoRA) can be folded into them")
        with ExitStack() as stack:
            for feature in self.enabled.values():
                stack.enter_context(feature.folded(receiver))
            yield
