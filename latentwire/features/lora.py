"""LoRA on the receivers through peft (`inject_adapter_in_model`: the receiver keeps its class)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn

from latentwire.features.base import Feature
from latentwire.llm.loader import Receiver

ADAPTER = "latentwire_lora"


def _lora_layers(model: nn.Module) -> list:
    from peft.tuners.lora import LoraLayer
    return [m for m in model.modules() if isinstance(m, LoraLayer) and ADAPTER in m.lora_A]


class Lora(Feature):
    """A LoRA adapter in each receiver; its parameters are registered here so that they are trained,
    checkpointed and loaded with the rest of the model. `plain` switches it off."""

    name = "lora"

    def __init__(self, config, receivers: dict[str, Receiver]):
        super().__init__()
        from peft import LoraConfig, inject_adapter_in_model

        self.receivers = receivers
        self.weights = nn.ModuleDict()
        for name, receiver in receivers.items():
            model = receiver.model
            existing = _lora_layers(model)
            if existing:   # a receiver reused by a second model in this process: start it afresh (this
                           # resets the first model's LoRA too: the weights live in the shared receiver)
                for layer in existing:
                    layer.reset_lora_parameters(ADAPTER, True)
                    layer.enable_adapters(True)
            else:
                inject_adapter_in_model(LoraConfig(r=config.rank, lora_alpha=config.alpha,
                                                   lora_dropout=config.dropout, target_modules=list(config.targets),
                                                   bias="none"), model, adapter_name=ADAPTER)
            params = nn.ParameterDict({key.replace(".", "__"): p for key, p in model.named_parameters()
                                       if "lora_" in key and ADAPTER in key})
            if not len(params):
                raise ValueError(f"lora.targets {list(config.targets)} match no module of receiver {name!r}")
            for p in params.values():
                p.requires_grad_(True)
            self.weights[name] = params

    @contextmanager
    def plain(self, receiver: str) -> Iterator[None]:
        layers = _lora_layers(self.receivers[receiver].model)
        for layer in layers:
            layer.enable_adapters(False)
        try:
            yield
        finally:
            for layer in layers:
                layer.enable_adapters(True)
