"""Receiver adapters: latent Z [B, M, d_z] -> one receiver's input embeddings [B, M, d_model], RMS-calibrated.

One registry: the encoder names the adapter that reads its latent (`Encoder.adapter`) and hands it
what it needs from the sender's side (`Encoder.link`); `build_adapters` makes one per receiver.
"""
from __future__ import annotations

from typing import Any, Callable

from torch import nn

from latentwire.adapters.mlp import Adapter, embedding_rms, rms_calibrate
from latentwire.adapters.token_code import TokenCodeAdapter
from latentwire.adapters.token_merge import SharedTokenReader


def _mlp(d_z: int, receivers: dict, target_rms: dict[str, float], link: dict[str, Any]) -> nn.ModuleDict:
    """LayerNorm -> MLP adapters, trained from a random start."""
    return nn.ModuleDict({name: Adapter(d_z, r.model.config.hidden_size, target_rms[name])
                          for name, r in receivers.items()})


def _warm_mlp(d_z: int, receivers: dict, target_rms: dict[str, float], link: dict[str, Any]) -> nn.ModuleDict:
    """MLP adapters with a linear skip path that starts at the map link["warm_start"][name] = (W, b)."""
    adapters = nn.ModuleDict({name: Adapter(d_z, r.model.config.hidden_size, target_rms[name], linear_skip=True)
                              for name, r in receivers.items()})
    for name in receivers:
        adapters[name].warm_start_(*link["warm_start"][name])
    return adapters


def _token_code(d_z: int, receivers: dict, target_rms: dict[str, float], link: dict[str, Any]) -> nn.ModuleDict:
    """Token-code decoders over the shared code table link["codes"] [n, d_z/k] of the tokens
    link["token_ids"][name] (ids in each receiver's vocabulary), k = link["tokens_per_slot"] a slot."""
    return nn.ModuleDict({name: TokenCodeAdapter(link["codes"], link["token_ids"][name], r, target_rms[name],
                                                 link["tokens_per_slot"]) for name, r in receivers.items()})


def _token_merge(d_z: int, receivers: dict, target_rms: dict[str, float], link: dict[str, Any]) -> nn.ModuleDict:
    """Readers of lossless token packets: shared ids -> each receiver's ids link["receiver_ids"][name] -> its
    embeddings read k to a position (merge link["merge"], for each k in link["ks"]; decoder-layer states pooled
    by link["layer_pool"], an MLP pool of hidden width link["pool_hidden"])."""
    return nn.ModuleDict({name: SharedTokenReader(link["receiver_ids"][name], r.model.get_input_embeddings(),
                                                  link["merge"], link["ks"], layer_pool=link.get("layer_pool", "mean"),
                                                  pool_hidden=link.get("pool_hidden", 128))
                          for name, r in receivers.items()})


ADAPTERS: dict[str, Callable[..., nn.ModuleDict]] = {"mlp": _mlp, "warm_mlp": _warm_mlp, "token_code": _token_code,
                                                     "token_merge": _token_merge}


def build_adapters(kind: str, d_z: int, receivers: dict, link: dict[str, Any]) -> nn.ModuleDict:
    """One adapter of kind `kind` per receiver (name -> Receiver, in order), each calibrated to that
    receiver's input-embedding RMS; `link` is what the encoder's `link` returned."""
    target_rms = {name: embedding_rms(r.model.get_input_embeddings().weight) for name, r in receivers.items()}
    return ADAPTERS[kind](d_z, receivers, target_rms, link)


__all__ = ["ADAPTERS", "Adapter", "TokenCodeAdapter", "build_adapters", "embedding_rms", "rms_calibrate"]
