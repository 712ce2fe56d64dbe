"""The lossless sender: a text's tokens, every one, as shared-vocabulary ids (latentwire.wire.shared_vocab), on
the wire as a version 2 packet (latentwire.wire.token_packet). Nothing here is trained: what a receiver makes
of the ids (k to a position, merged) is its reader's job (latentwire.adapters.token_merge).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from latentwire.adapters.token_merge import MAX_K, balanced_layout
from latentwire.config import EncoderConfig
from latentwire.encoders.base import Encoder
from latentwire.errors import CodingError
from latentwire.llm.loader import Receiver
from latentwire.wire.bigram import BigramTable
from latentwire.wire.token_packet import TokenWire
from latentwire.wire.unigram import UnigramTable


@dataclass
class TokenBatch:
    """A batch of token packets' contents: shared ids [B, T] (left-aligned), their mask [B, T] and, for a
    two-resolution reading, the receiver's focus marks [B, T] or, for a reading within a position budget, its
    groups [B, M, g] (balanced_layout; None: read uniformly; neither is ever on the wire)."""

    ids: torch.Tensor
    mask: torch.Tensor
    focus: torch.Tensor | None = None
    layout: torch.Tensor | None = None

    def to(self, device) -> TokenBatch:
        return TokenBatch(self.ids.to(device), self.mask.to(device),
                          None if self.focus is None else self.focus.to(device),
                          None if self.layout is None else self.layout.to(device))

    def selected(self, indices: list[int]) -> TokenBatch:
        """One example's tokens (B = 1) at `indices` [T'] (in order), without focus marks or a layout."""
        index = torch.tensor(indices, dtype=torch.long, device=self.ids.device)
        return TokenBatch(self.ids[:, index], self.mask[:, index])

    def uniform(self) -> TokenBatch:
        """The same tokens without focus marks or a layout."""
        return TokenBatch(self.ids, self.mask)

    def capped(self, k: int, positions: int) -> TokenBatch:
        """One example's tokens (B = 1) read k a position within `positions` receiver positions: unchanged
        (uniform) where ceil(T / k) fits, else T tokens in max(positions, ceil(T / MAX_K)) balanced groups."""
        length = int(self.mask[0].sum())
        if math.ceil(length / k) <= positions or length == 0:
            return self.uniform()
        count = min(length, max(positions, math.ceil(length / MAX_K)))
        return TokenBatch(self.ids, self.mask, layout=balanced_layout([length], [count]).to(self.ids.device))

    def focused(self, marks: list[int]) -> TokenBatch:
        """One example's tokens (B = 1) with the focus marks [T] a receiver made (latentwire.adapters.focus)."""
        focus = torch.zeros_like(self.mask)
        focus[0, :len(marks)] = torch.tensor(marks, dtype=focus.dtype)
        return TokenBatch(self.ids, self.mask, focus)


class TokenIdEncoder(Encoder):
    """Text -> its shared ids [T] (features [T, 1]); a batch -> TokenBatch; packets of version 2."""

    needs_source, adapter, carries_tokens = True, "token_merge", True

    def __init__(self, config: EncoderConfig, source: Receiver):
        super().__init__()
        self.source, self.config = source, config
        self.wire: TokenWire | None = None

    def link(self, receivers: dict) -> dict:
        """Build the shared vocabulary of the source and every receiver and the packet coder; returns what the
        readers need: each receiver's id of every shared string, the merge and the ks they read."""
        tokenizers = [r.tokenizer for r in receivers.values()]
        try:
            table = UnigramTable.load(self.config.unigram or None)
            bigram = BigramTable.load(self.config.bigram or None) if self.config.coder == "bigram" else None
            self.wire = TokenWire.for_tokenizers(self.source.tokenizer, tokenizers, table, bigram)
        except CodingError as error:
            raise CodingError(f"encoder.unigram/bigram: {error}; `latentwire fit-unigram --out FILE` fits them for "
                              "these receivers") from None
        vocabulary = self.wire.vocabulary
        return {"receiver_ids": {name: vocabulary.receiver_ids(r.tokenizer) for name, r in receivers.items()},
                "merge": self.config.merge, "ks": tuple(self.config.ks),
                "layer_pool": self.config.layer_pool, "pool_hidden": self.config.pool_hidden}

    def featurize(self, text: str) -> torch.Tensor:
        """[T, 1]: the shared ids spelling `text` exactly (as float32, exact below 2**24)."""
        return torch.tensor(self.wire.vocabulary.encode(text), dtype=torch.float32)[:, None]

    def with_focus(self, features: torch.Tensor, marks: list[int]) -> torch.Tensor:
        """features [T, 1] and focus marks [T] -> [T, 2] (training examples carry the marks a receiver would
        make, so that a step can read at two resolutions; the packet never does)."""
        return torch.cat([features, torch.tensor(marks, dtype=features.dtype)[:, None]], dim=1)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> TokenBatch:
        """features [B, T, 1 or 2], mask [B, T] -> TokenBatch (ids, mask and, with a second column, the focus
        marks; each [B, T])."""
        focus = features[..., 1].long() * mask.long() if features.shape[-1] > 1 else None
        return TokenBatch(features[..., 0].long() * mask.long(), mask.long(), focus)

    def wire_view(self, z: TokenBatch, bits: int, group_size: int) -> TokenBatch:
        """The tokens as the receiver gets them: the wire carries them exactly."""
        return z

    def pack(self, latent: TokenBatch, bits: int, group_size: int, checkpoint_id: bytes) -> bytes:
        """One example's TokenBatch (B = 1) -> a version 2 packet (bits, group size and weights id unused: the
        packet names its vocabulary and coder instead)."""
        return self.wire.pack_ids(latent.ids[0][latent.mask[0] > 0].tolist())

    def unpack(self, packet: bytes, checkpoint_id: bytes) -> TokenBatch:
        """A version 2 packet -> TokenBatch (B = 1); PacketError for another vocabulary or a malformed one."""
        ids = torch.tensor([self.wire.unpack(packet).context_ids])
        return TokenBatch(ids, torch.ones_like(ids))
