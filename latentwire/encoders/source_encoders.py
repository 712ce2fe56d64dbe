"""Encoders that read a frozen source LM: its token embeddings (mean_pool) or hidden states (lm_perceiver)."""
from __future__ import annotations

import torch
from torch import nn

from latentwire.config import EncoderConfig
from latentwire.encoders.base import Encoder
from latentwire.encoders.blocks import Resampler
from latentwire.llm.loader import Receiver
from latentwire.llm.offline import minilm_path


class MeanPoolEncoder(Encoder):
    """Source-LM token embeddings averaged over M contiguous spans, then a linear map to d_z."""

    needs_source = True

    def __init__(self, config: EncoderConfig, source: Receiver):
        super().__init__()
        self.source, self.M, self.max_input = source, config.M, config.max_input
        d_source = source.model.get_input_embeddings().weight.shape[1]
        self.project = nn.Sequential(nn.LayerNorm(d_source), nn.Linear(d_source, config.d_z))

    def featurize(self, text: str) -> torch.Tensor:
        """Frozen token embeddings [T, d_source] of `text` under the source LM."""
        return source_token_embeddings(self.source, text, self.max_input)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """features [B, T, d_source], mask [B, T] -> Z [B, M, d_z]."""
        return self.project(span_means(features, mask, self.M))


@torch.no_grad()
def source_token_embeddings(source: Receiver, text: str, max_input: int) -> torch.Tensor:
    """The source LM's input embeddings [T, d_source] of `text`'s first max_input tokens."""
    ids = source.tokenizer(text, add_special_tokens=False)["input_ids"][:max_input] or [0]
    return source.embed(torch.tensor([ids], device=source.device))[0].float()


def span_means(features: torch.Tensor, mask: torch.Tensor, M: int) -> torch.Tensor:
    """Mean of each example's real positions split into M contiguous spans: [B, T, d] -> [B, M, d]."""
    lengths = mask.sum(-1, keepdim=True).clamp(min=1)                          # [B, 1]
    positions = torch.arange(features.shape[1], device=features.device)[None]  # [1, T]
    slot = (positions * M) // lengths                                          # [B, T]
    weights = torch.nn.functional.one_hot(slot.clamp(max=M - 1), M).float() * mask[..., None]  # [B, T, M]
    weights = weights / weights.sum(1, keepdim=True).clamp(min=1)
    return torch.einsum("btm,btd->bmd", weights, features)


class LMPerceiverEncoder(Encoder):
    """Hidden states of one layer of a frozen causal LM, resampled by a Perceiver stack to M slots."""

    needs_source = True

    def __init__(self, config: EncoderConfig, source: Receiver):
        super().__init__()
        self.source, self.layer, self.max_input = source, config.source_layer, config.max_input
        n_layers = source.model.config.num_hidden_layers
        if not 0 <= config.source_layer <= n_layers:
            raise ValueError(f"encoder.source_layer must be in [0, {n_layers}] for {source.name}")
        d_source = source.model.config.hidden_size
        self.project = nn.Linear(d_source, config.width)
        self.resampler = Resampler(config.M, config.width, config.heads, config.layers, config.d_z)

    @torch.no_grad()
    def featurize(self, text: str) -> torch.Tensor:
        """Frozen hidden states [T, d_source] of layer `source_layer` for `text`."""
        ids = self.source.tokenizer(text, add_special_tokens=False)["input_ids"][: self.max_input] or [0]
        out = self.source.model(input_ids=torch.tensor([ids], device=self.source.device),
                                output_hidden_states=True, logits_to_keep=1)
        return out.hidden_states[self.layer][0].float()

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """features [B, T, d_source], mask [B, T] -> Z [B, M, d_z]."""
        return self.resampler(self.project(features), mask)


class MiniLMEncoder(Encoder):
    """Frozen all-MiniLM-L6-v2 token features (or any BERT-like encoder in `source_model`) + M queries."""

    needs_source = False  # it loads its own frozen encoder; no receiver is needed

    def __init__(self, config: EncoderConfig, source=None):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        from latentwire.llm.offline import OFFLINE_MODELS

        # the offline MiniLM unless source_model names another BERT-like model (a causal receiver name is
        # the default of the LM-based encoders and means nothing here)
        own = config.source_model in ("", "minilm") or config.source_model in OFFLINE_MODELS
        path = minilm_path() if own else config.source_model
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        frozen = AutoModel.from_pretrained(path).eval().requires_grad_(False)
        self._frozen = [frozen]  # a list: kept out of state_dict and of the optimizer
        self.max_input = min(config.max_input, frozen.config.max_position_embeddings)
        self.project = nn.Linear(frozen.config.hidden_size, config.width)
        self.resampler = Resampler(config.M, config.width, config.heads, config.layers, config.d_z)

    @torch.no_grad()
    def featurize(self, text: str) -> torch.Tensor:
        """Frozen last-layer token features [T, 384] of `text`."""
        encoded = self.tokenizer(text, truncation=True, max_length=self.max_input, return_tensors="pt")
        return self._frozen[0](**encoded).last_hidden_state[0].float()

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """features [B, T, 384], mask [B, T] -> Z [B, M, d_z]."""
        return self.resampler(self.project(features), mask)


class EmbedPCAEncoder(Encoder):
    """Span means of the source LM's token embeddings, mapped to d_z by a learned linear map that starts
    at the embedding table's top-d_z principal directions: the latent starts in the receivers' own
    embedding space, kept through the bottleneck. `warm_start_map` gives each receiver's adapter the
    least-squares way back (fitted on the tokens both vocabularies share)."""

    needs_source, adapter = True, "warm_mlp"

    def __init__(self, config: EncoderConfig, source: Receiver):
        super().__init__()
        self.source, self.M, self.max_input = source, config.M, config.max_input
        table = source.model.get_input_embeddings().weight.detach().float()
        self.register_buffer("mean", table.mean(0), persistent=False)
        centred = table - self.mean
        _, _, directions = torch.linalg.svd(centred[torch.randperm(len(centred), generator=torch.Generator()
                                                                    .manual_seed(0))[:8192]], full_matrices=False)
        self.project = nn.Linear(table.shape[1], config.d_z)
        with torch.no_grad():
            self.project.weight.copy_(directions[:config.d_z])
            self.project.bias.copy_(-directions[:config.d_z] @ self.mean)

    def featurize(self, text: str) -> torch.Tensor:
        """Frozen token embeddings [T, d_source] of `text` under the source LM."""
        return source_token_embeddings(self.source, text, self.max_input)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """features [B, T, d_source], mask [B, T] -> Z [B, M, d_z]."""
        return self.project(span_means(features, mask, self.M))

    def link(self, receivers: dict[str, Receiver]) -> dict:
        """{"warm_start": {name: (W, b)}}: each receiver adapter's starting linear map (see warm_start_map)."""
        return {"warm_start": {name: self.warm_start_map(r) for name, r in receivers.items()}}

    @torch.no_grad()
    def warm_start_map(self, receiver: Receiver) -> tuple[torch.Tensor, torch.Tensor]:
        """(W [d_model, d_z], b [d_model]) with receiver_embedding(token) ~ W z(token) + b, least squares
        over the tokens whose strings both vocabularies share (z = this encoder's map of the source's)."""
        source_vocab, target_vocab = self.source.vocabulary(), receiver.vocabulary()
        shared = sorted(set(source_vocab) & set(target_vocab))
        if len(shared) < 4 * self.project.out_features:
            raise ValueError(f"encoder.kind=embed_pca: {self.source.name} and {receiver.name} share only "
                             f"{len(shared)} tokens, too few to map between their embedding spaces")
        source_ids = torch.tensor([source_vocab[t] for t in shared])
        target_ids = torch.tensor([target_vocab[t] for t in shared])
        z = self.project(self.source.model.get_input_embeddings().weight[source_ids].float())     # [n, d_z]
        target = receiver.model.get_input_embeddings().weight[target_ids].float()                # [n, d_model]
        design = torch.cat([z, torch.ones(len(z), 1)], dim=1)
        solution = torch.linalg.lstsq(design, target).solution                                  # [d_z + 1, d_model]
        return solution[:-1].T.contiguous(), solution[-1].contiguous()
