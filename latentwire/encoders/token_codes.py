"""Token-code latent: each slot names one token of its span, the one the source LM found most surprising,
as a d_z-dimensional code; each receiver's adapter decodes a code into a softmax mixture of its own
token embeddings (latentwire.adapters.token_code), so that the receiver reads (nearly) real tokens from the
first step. A slot may name
several tokens (encoder.tokens_per_slot = k, d_z / k dims each); the receiver then reads their embeddings
merged (a learned per-dimension weighted sum) at one position, k tokens per receiver position.

Only tokens whose string every vocabulary has can be named (with select=surprise, only word-like
ones). Each gets a distinct point of the
int4 grid ({-7..7}/7 in every dimension, drawn with a fixed seed over the sorted shared strings), so the
sender and every receiver derive the same code table from their tokenizers alone and an int4 packet
carries each code exactly. Both tables are trainable from there.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from latentwire.config import EncoderConfig
from latentwire.encoders.base import Encoder
from latentwire.llm.loader import Receiver
from latentwire.wire.quantize import qmax_for

MIN_SHARED = 64
LEVELS = 2 * qmax_for(4) + 1   # int4's codes -7..7
GRID_STEP = 1 / qmax_for(4)     # the grid spans [-1, 1]; a code of magnitude 1 in a group keeps int4's scale at 1/7


def grid_codes(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """n distinct points [n, d] of the grid {-7..7}/7 in d dimensions, drawn with a fixed seed."""
    cells = LEVELS ** d
    if cells < n:
        raise ValueError(f"encoder.kind=token_code: d_z={d} gives {cells} grid codes for {n} tokens; "
                         f"raise encoder.d_z")
    generator = torch.Generator().manual_seed(seed)
    if cells <= 10_000_000:
        index = torch.randperm(cells, generator=generator)[:n]
        digits = torch.stack([(index // LEVELS ** k) % LEVELS for k in range(d)], dim=1)
    else:
        digits = torch.randint(0, LEVELS, (n, d), generator=generator)
        while True:   # redraw the (rare) repeated points
            _, inverse = torch.unique(digits, dim=0, return_inverse=True)
            first = torch.full((len(digits),), len(digits)).scatter_reduce(0, inverse, torch.arange(len(digits)),
                                                                           "amin")
            repeated = first[inverse] != torch.arange(len(digits))
            if not repeated.any():
                break
            digits[repeated] = torch.randint(0, LEVELS, (int(repeated.sum()), d), generator=generator)
    return (digits - LEVELS // 2).float() * GRID_STEP


def word_like(token: str) -> bool:
    """A vocabulary string worth naming: after its space marker, at least 2 ASCII characters, one alphanumeric."""
    body = token.lstrip("Ġ▁ ")
    return len(body) >= 2 and body.isascii() and any(c.isalnum() for c in body)


class TokenCodeEncoder(Encoder):
    """Source tokens + their surprise under the source LM -> k token codes per slot: the most surprising
    nameable token of each of M*k contiguous windows (select=surprise), the first M*k nameable tokens
    (select=prefix), or the most surprising M*k of the first M*k/keep_ratio (select=prune)."""

    needs_source, adapter = True, "token_code"

    def __init__(self, config: EncoderConfig, source: Receiver):
        super().__init__()
        self.source, self.M, self.max_input, self.d_z = source, config.M, config.max_input, config.d_z
        self.k, self.select, self.keep_ratio = config.tokens_per_slot, config.select, config.keep_ratio
        self.d_token = config.d_z // config.tokens_per_slot
        self.source_vocab = source.vocabulary()
        rows = source.model.get_input_embeddings().weight.shape[0]
        self.codes = nn.Embedding(rows, self.d_token, _weight=torch.zeros(rows, self.d_token))   # set by link
        self.register_buffer("nameable", torch.zeros(rows, dtype=torch.bool), persistent=False)

    @torch.no_grad()
    def featurize(self, text: str) -> torch.Tensor:
        """[T, 2]: the source token ids of `text` and each token's surprise in bits under the source LM (0 under
        select=prefix, which never reads it: no LM pass is run then)."""
        ids = self.source.tokenizer(text, add_special_tokens=False)["input_ids"][: self.max_input] or [0]
        surprise = torch.zeros(len(ids))
        if self.select == "prefix":
            return torch.stack([torch.tensor(ids, dtype=torch.float32), surprise], dim=1)
        tensor = torch.tensor([ids], device=self.source.device)
        logits = self.source.model(input_ids=tensor).logits[0].float()
        if len(ids) > 1:
            logp = torch.log_softmax(logits[:-1], -1).gather(1, tensor[0, 1:, None])[:, 0]
            surprise[1:] = -logp.cpu() / math.log(2)
        return torch.stack([torch.tensor(ids, dtype=torch.float32), surprise], dim=1)

    def chosen_tokens(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """features [B, T, 2], mask [B, T] -> source token ids [B, M*k] in text order. surprise: per window,
        the most surprising nameable token (an unnameable one only where a window has none); prefix: the
        first M*k nameable tokens (then unnameable ones, then padding, where the text has too few);
        prune: the M*k most surprising of the first M*k/keep_ratio nameable tokens (the text's first token
        always kept: nothing predicts it), in order."""
        ids, n = features[..., 0].long(), self.M * self.k
        positions = torch.arange(ids.shape[1], device=ids.device)[None]
        unnameable = (~self.nameable[ids]).float()
        if self.select in ("prefix", "prune"):
            score = -positions - 1e6 * unnameable - 1e9 * (mask == 0).float()     # [B, T]
            if self.select == "prune":
                usable = (unnameable == 0) & (mask > 0)
                window = usable & (usable.long().cumsum(1) <= math.ceil(n / self.keep_ratio))
                surprise = features[..., 1].masked_fill(positions == 0, 1e4)
                score = torch.where(window, 1e5 + surprise, score)                 # the window first, by surprise
            if ids.shape[1] < n:
                score = torch.cat([score, score.new_full((len(ids), n - ids.shape[1]), -1e12)], 1)
                ids = torch.cat([ids, ids.new_zeros(len(ids), n - ids.shape[1])], 1)
            best = score.topk(n, dim=1).indices.sort(dim=1).values                 # [B, n] positions
            return ids.gather(1, best)
        score = (features[..., 1] - 1e4 * unnameable).masked_fill(mask == 0, float("-inf"))   # [B, T]
        lengths = mask.sum(-1, keepdim=True).clamp(min=1)
        slot = ((positions * n) // lengths).clamp(max=n - 1)                       # [B, T]
        in_slot = slot[..., None] == torch.arange(n, device=ids.device)           # [B, T, n]
        best = score[..., None].masked_fill(~in_slot, float("-inf")).argmax(1)    # [B, n] positions
        return ids.gather(1, best)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """features [B, T, 2], mask [B, T] -> Z [B, M, d_z] (k token codes of d_z/k dims per slot)."""
        codes = self.codes(self.chosen_tokens(features, mask))                    # [B, M*k, d_z/k]
        return codes.reshape(len(codes), self.M, self.d_z)

    @torch.no_grad()
    def named_tokens(self, z: torch.Tensor) -> list[int]:
        """Z [M, d_z] (a decoded packet) -> the M*k source token ids its codes name (the nearest nameable
        token's code to each)."""
        rows = self.nameable.nonzero()[:, 0]
        codes = z.float().reshape(-1, self.d_token).to(rows.device)
        nearest = torch.cdist(codes, self.codes.weight[rows].float()).argmin(1)
        return rows[nearest].tolist()

    def link(self, receivers: dict[str, Receiver]) -> dict:
        """Sender side of the shared code table: the strings that the source and every receiver share become
        nameable, each with a distinct int4 grid code; returns what the receivers' token-code adapters need
        ({"codes": [n, d_z/k], "token_ids": {name: [n] ids in that receiver's vocabulary}, "tokens_per_slot"})."""
        vocabularies = {name: r.vocabulary() for name, r in receivers.items()}
        special = {t for r in [self.source, *receivers.values()] for t in r.tokenizer.all_special_tokens}
        nameable = word_like if self.select == "surprise" else (lambda s: s not in special)
        shared = sorted(s for s in self.source_vocab if nameable(s) and all(s in v for v in vocabularies.values()))
        if len(shared) < MIN_SHARED:
            kind = "word-like " if self.select == "surprise" else ""
            raise ValueError(f"encoder.kind=token_code: the source and receivers {sorted(receivers)} share only "
                             f"{len(shared)} {kind}tokens (need {MIN_SHARED}); byte-level BPE vocabularies "
                             f"of the same family do")
        rows = torch.tensor([self.source_vocab[s] for s in shared])
        codes = grid_codes(len(shared), self.d_token)
        with torch.no_grad():
            self.codes.weight[rows] = codes
        self.nameable.zero_()
        self.nameable[rows] = True
        return {"codes": codes, "tokens_per_slot": self.k,
                "token_ids": {name: torch.tensor([vocabularies[name][s] for s in shared]) for name in receivers}}
