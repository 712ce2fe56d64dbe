"""LoRA on the receivers through peft (via transformers' adapter integration)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn

from latentwire.features.base import Feature
from latentwire.llm.loader import Receiver

ADAPTER = "latentwire_lora"


class Lora(Feature):
    """A LoRA adapter in each receiver; its parameters are registered here so that they are trained,
    checkpointed and loaded with the rest of the model. `plain` switches it off."""

    name = "lora"

    def __init__(self, config, receivers: dict[str, Receiver]):
        super().__init__()
        from peft import LoraConfig

        self.receivers = receivers
        self.weights = nn.ModuleDict()
        for name, receiver in receivers.items():
            model = receiver.model
            if ADAPTER in (getattr(model, "peft_config", None) or {}):
                model.delete_adapter(ADAPTER)   # a receiver reused by a second model in this process
            model.add_adapter(LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                                         target_modules=list(config.targets), bias="none"), adapter_name=ADAPTER)
            model.set_adapter(ADAPTER)
            params = nn.ParameterDict({key.replace(".", "__"): p for key, p in model.named_parameters()
                                       if "lora_" in key and ADAPTER in key})
            if not len(params):
                raise ValueError(f"lora.targets {list(config.targets)} match no module of receiver {name!r}")
            for p in params.values():
                p.requires_grad_(True)
            self.weights[name] = params

    @contextmanager
    def plain(self, receiver: str) -> Iterator[None]:
        model = self.receivers[receiver].model
        model.disable_adapters()
        try:
            yield
        finally:
            model.enable_adapters()
