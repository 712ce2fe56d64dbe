"""Token-code latent: each slot names one token of its span, the one the source LM found most surprising,
as a d_z-dimensional code; each receiver's adapter decodes a code into a softmax mixture of its own
token embeddings, so that the receiver reads (nearly) real tokens from the first step.

Codes start as a deterministic function of the token's string (a hash mapped to normal values), so the
sender and every receiver agree on them without sharing a table; both tables are trainable from there.
Only tokens whose string every vocabulary has (and that look like words) can be named.
"""
from __future__ import annotations

import hashlib
import math
from statistics import NormalDist

import torch
from torch import nn

from latentwire.adapters import rms_calibrate
from latentwire.config import EncoderConfig
from latentwire.llm.loader import Receiver

_NORMAL = NormalDist()
MIN_SHARED = 64


def string_code(text: str, d: int) -> list[float]:
    """d standard-normal values determined by `text` alone (the same on every machine)."""
    values: list[float] = []
    block = 0
    while len(values) < d:
        digest = hashlib.sha256(f"{block}\x00{text}".encode("utf-8", "surrogatepass")).digest()
        for i in range(0, 32, 4):
            u = (int.from_bytes(digest[i:i + 4], "little") + 0.5) / 2**32
            values.append(_NORMAL.inv_cdf(u))
        block += 1
    return values[:d]


def word_like(token: str) -> bool:
    """A vocabulary string worth naming: after its space marker, at least 2 ASCII characters, one alphanumeric."""
    body = token.lstrip("Ġ▁ ")
    return len(body) >= 2 and body.isascii() and any(c.isalnum() for c in body)


def vocabulary(receiver: Receiver) -> dict[str, int]:
    """String -> id for the ids that have an input embedding row."""
    rows = receiver.model.get_input_embeddings().weight.shape[0]
    return {s: i for s, i in receiver.tokenizer.get_vocab().items() if i < rows}


class TokenCodeEncoder(nn.Module):
    """Source tokens + their surprise under the source LM -> one code per slot (the most surprising
    nameable token of each of M contiguous spans)."""

    frozen_features = True

    def __init__(self, config: EncoderConfig, source: Receiver):
        super().__init__()
        self.source, self.M, self.max_input, self.d_z = source, config.M, config.max_input, config.d_z
        self.source_vocab = vocabulary(source)
        rows = source.model.get_input_embeddings().weight.shape[0]
        init = torch.zeros(rows, config.d_z)
        for token, index in self.source_vocab.items():
            init[index] = torch.tensor(string_code(token, config.d_z))
        self.codes = nn.Embedding(rows, config.d_z, _weight=init)
        self.register_buffer("nameable", torch.zeros(rows, dtype=torch.bool), persistent=False)

    @torch.no_grad()
    def featurize(self, text: str) -> torch.Tensor:
        """[T, 2]: the source token ids of `text` and each token's surprise in bits under the source LM."""
        ids = self.source.tokenizer(text, add_special_tokens=False)["input_ids"][: self.max_input] or [0]
        tensor = torch.tensor([ids], device=self.source.device)
        logits = self.source.model(input_ids=tensor).logits[0].float()
        surprise = torch.zeros(len(ids))
        if len(ids) > 1:
            logp = torch.log_softmax(logits[:-1], -1).gather(1, tensor[0, 1:, None])[:, 0]
            surprise[1:] = -logp.cpu() / math.log(2)
        return torch.stack([torch.tensor(ids, dtype=torch.float32), surprise], dim=1)

    def chosen_tokens(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """features [B, T, 2], mask [B, T] -> source token ids [B, M]: per span, the most surprising
        nameable token (an unnameable one only where a span has none)."""
        ids = features[..., 0].long()
        score = features[..., 1] - 1e4 * (~self.nameable[ids]).float()
        score = score.masked_fill(mask == 0, float("-inf"))                         # [B, T]
        lengths = mask.sum(-1, keepdim=True).clamp(min=1)
        positions = torch.arange(ids.shape[1], device=ids.device)[None]
        slot = ((positions * self.M) // lengths).clamp(max=self.M - 1)              # [B, T]
        in_slot = slot[..., None] == torch.arange(self.M, device=ids.device)      # [B, T, M]
        best = score[..., None].masked_fill(~in_slot, float("-inf")).argmax(1)    # [B, M] positions
        return ids.gather(1, best)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """features [B, T, 2], mask [B, T] -> Z [B, M, d_z]."""
        return self.codes(self.chosen_tokens(features, mask))

    def build_adapters(self, receivers: dict[str, Receiver], target_rms: dict[str, float]) -> nn.ModuleDict:
        """One TokenCodeAdapter per receiver over the strings that the source and every receiver share;
        marks those strings nameable on the sender side."""
        vocabularies = {name: vocabulary(r) for name, r in receivers.items()}
        shared = sorted(s for s in self.source_vocab if word_like(s) and all(s in v for v in vocabularies.values()))
        if len(shared) < MIN_SHARED:
            raise ValueError(f"encoder.kind=token_code: the source and receivers {sorted(receivers)} share only "
                             f"{len(shared)} word-like tokens (need {MIN_SHARED}); byte-level BPE vocabularies "
                             f"of the same family do")
        self.nameable.zero_()
        self.nameable[torch.tensor([self.source_vocab[s] for s in shared])] = True
        codes = self.codes.weight.detach()[torch.tensor([self.source_vocab[s] for s in shared])].clone()
        return nn.ModuleDict({
            name: TokenCodeAdapter(codes, torch.tensor([vocabularies[name][s] for s in shared]), receiver,
                                   target_rms[name])
            for name, receiver in receivers.items()})


class TokenCodeAdapter(nn.Module):
    """Z [B, M, d_z] -> softmax(-beta * squared distance to each shared token's code) mixture of this
    receiver's embeddings of those tokens, then per-example RMS calibration."""

    def __init__(self, codes: torch.Tensor, token_ids: torch.Tensor, receiver: Receiver, target_rms: float,
                 beta: float = 20.0):
        super().__init__()
        self.codes = nn.Parameter(codes)                                    # [n, d_z]
        self.log_beta = nn.Parameter(torch.tensor(math.log(beta)))
        table = receiver.model.get_input_embeddings().weight.detach().float()
        self.register_buffer("embeddings", table[token_ids.to(table.device)].clone(), persistent=False)
        self.register_buffer("target_rms", torch.tensor(float(target_rms)))

    def token_weights(self, z: torch.Tensor) -> torch.Tensor:
        """Z [B, M, d_z] -> weights [B, M, n] over the shared tokens (rows sum to 1)."""
        distance = (z.pow(2).sum(-1, keepdim=True) - 2 * z @ self.codes.T + self.codes.pow(2).sum(-1))
        return torch.softmax(-self.log_beta.exp() * distance, dim=-1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Z [B, M, d_z] -> [B, M, d_model] at the receiver's embedding RMS."""
        return rms_calibrate(self.token_weights(z) @ self.embeddings.to(z.dtype), self.target_rms)
