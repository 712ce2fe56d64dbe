"""LoRA on the receivers through peft (`inject_adapter_in_model`: the receiver keeps its class).

Each LatentWire model injects its own named adapter, so that several models can share one loaded
receiver: an adapter acts only while its model reads a latent (`reading`); outside, the receiver is
itself. Checkpoint keys name the adapter `latentwire_lora` whatever its name inside the receiver.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from latentwire.features.base import Feature
from latentwire.llm.loader import Receiver

ADAPTER = "latentwire_lora"


def _lora_layers(model: nn.Module, adapter: str) -> list:
    """The peft LoRA layers of `model` that hold adapter `adapter`."""
    from peft.tuners.lora import LoraLayer
    return [m for m in model.modules() if isinstance(m, LoraLayer) and adapter in m.lora_A]


def _free_name(model: nn.Module) -> str:
    """The first of latentwire_lora, latentwire_lora_2, ... that no LoRA layer of `model` holds yet."""
    from peft.tuners.lora import LoraLayer
    taken = {name for m in model.modules() if isinstance(m, LoraLayer) for name in m.lora_A}
    return next(name for name in [ADAPTER] + [f"{ADAPTER}_{i}" for i in range(2, len(taken) + 3)]
                if name not in taken)


def _use(layers: list, adapter: str | None) -> None:
    """Make `layers` compute with `adapter` alone (None: with no adapter), leaving requires_grad as it was."""
    flags = [(p, p.requires_grad) for layer in layers for p in layer.parameters()]
    for layer in layers:
        if adapter is None:
            layer.enable_adapters(False)
        else:
            layer.set_adapter(adapter)
            layer.enable_adapters(True)
    for p, flag in flags:
        p.requires_grad_(flag)


@contextmanager
def _switched(layers: list, adapter: str | None) -> Iterator[None]:
    """Inside the block `layers` compute with `adapter` alone (None: with no adapter); afterwards each
    layer computes as before (its active adapter or none)."""
    before = [(layer.active_adapters[:], layer.disable_adapters) for layer in layers]
    _use(layers, adapter)
    try:
        yield
    finally:
        for layer, (active, disabled) in zip(layers, before):
            _use([layer], None if disabled else active[0])


class Lora(Feature):
    """A LoRA adapter of this model in each receiver; its parameters are registered here so that they are
    trained, checkpointed and loaded with the rest of the model."""

    name = "lora"
    weights_only = True

    def __init__(self, config, receivers: dict[str, Receiver]):
        super().__init__()
        from peft import LoraConfig, inject_adapter_in_model

        self.receivers, self.adapters, self.layers = receivers, {}, {}
        self.weights = nn.ModuleDict()
        for name, receiver in receivers.items():
            model, adapter = receiver.model, _free_name(receiver.model)
            with warnings.catch_warnings():   # peft warns when a model gets a second adapter: that is the point
                warnings.simplefilter("ignore", UserWarning)
                inject_adapter_in_model(LoraConfig(r=config.rank, lora_alpha=config.alpha,
                                                   lora_dropout=config.dropout, target_modules=list(config.targets),
                                                   bias="none"), model, adapter_name=adapter)
            self.layers[name] = _lora_layers(model, adapter)   # found once: reading switches them at every forward
            for layer in self.layers[name]:   # trainable weights stay float32 on a bfloat16 receiver
                layer.lora_A[adapter].float()
                layer.lora_B[adapter].float()
            params = nn.ParameterDict({key.replace(adapter, ADAPTER).replace(".", "__"): p
                                       for key, p in model.named_parameters() if f".{adapter}." in key})
            if not len(params):
                raise ValueError(f"lora.targets {list(config.targets)} match no module of receiver {name!r}")
            for p in params.values():
                p.requires_grad_(True)
            self.weights[name], self.adapters[name] = params, adapter
            _use(self.layers[name], None)   # the receiver stays itself until this model reads through it

    def receiver_parameters(self, receiver: str) -> Iterator[nn.Parameter]:
        yield from self.weights[receiver].values()

    @contextmanager
    def reading(self, receiver: str, embeds: torch.Tensor) -> Iterator[None]:
        with _switched(self.layers[receiver], self.adapters[receiver]):
            yield

    @contextmanager
    def plain(self, receiver: str) -> Iterator[None]:
        with _switched(self.layers[receiver], None):
            yield

    @contextmanager
    def folded(self, receiver: str) -> Iterator[None]:
        """W + scale * B A in each adapted layer's weight while inside (peft's merge; a forward with the
        adapter off, `plain`, unmerges first); afterwards the exact weights of before (saved, not unmerged:
        unmerging in bfloat16 would not give them back)."""
        layers, adapter = self.layers[receiver], self.adapters[receiver]
        saved = [layer.get_base_layer().weight.detach().clone() for layer in layers]
        with _switched(layers, adapter):
            try:
                for layer in layers:
                    layer.merge(adapter_names=[adapter])
                yield
            finally:
                with torch.no_grad():
                    for layer, weight in zip(layers, saved):
                        layer.get_base_layer().weight.copy_(weight)
                        layer.merged_adapters.clear()
