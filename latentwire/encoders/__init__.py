"""Encoders: text -> latent Z [B, M, d_z], one registry. Each is an `Encoder` (latentwire/encoders/base.py):
`featurize(text) -> [T, ...]` (frozen, cacheable per example), `forward(features [B, T, ...], mask [B, T]) -> Z`,
and what it declares (a source LM it reads, the adapter that reads its latent)."""
from __future__ import annotations

from latentwire.config import EncoderConfig
from latentwire.encoders.base import Encoder
from latentwire.encoders.byte_encoder import ByteEncoder
from latentwire.encoders.source_encoders import (
    EmbedPCAEncoder,
    LMPerceiverEncoder,
    MeanPoolEncoder,
    MiniLMEncoder,
)
from latentwire.encoders.token_codes import TokenCodeEncoder
from latentwire.encoders.token_ids import TokenIdEncoder

ENCODERS: dict[str, type[Encoder]] = {
    "byte": ByteEncoder,
    "mean_pool": MeanPoolEncoder,
    "lm_perceiver": LMPerceiverEncoder,
    "minilm": MiniLMEncoder,
    "embed_pca": EmbedPCAEncoder,
    "token_code": TokenCodeEncoder,
    "token_ids": TokenIdEncoder,
}


def build_encoder(config: EncoderConfig, source=None) -> Encoder:
    """The encoder named by `config.kind`; `source` is the frozen source LM where the kind needs one."""
    if config.kind not in ENCODERS:
        raise ValueError(f"encoder.kind must be one of {sorted(ENCODERS)}, got {config.kind!r}")
    cls = ENCODERS[config.kind]
    if cls.needs_source and source is None:
        raise ValueError(f"encoder.kind={config.kind} needs a source LM (encoder.source_model)")
    return cls(config, source)
