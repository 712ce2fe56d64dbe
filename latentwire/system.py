"""The LatentWire model: encoder -> latent Z -> (wire) -> per-receiver adapter -> receiver embeddings.

Only the encoder and the adapters are trainable; receivers are frozen and addressed by name.
"""
from __future__ import annotations

import hashlib

import torch
from torch import nn

from latentwire.adapters import Adapter, embedding_rms
from latentwire.config import Config
from latentwire.data.examples import MAX_FIELD_CHARS
from latentwire.encoders import build_encoder
from latentwire.encoders.blocks import pad_features
from latentwire.features import ReceiverFeatures
from latentwire.llm.loader import Receiver
from latentwire.prompt import split_content
from latentwire.wire import decode_latent, encode_latent, fake_quantize


class LatentWire(nn.Module):
    """Encoder plus one adapter per receiver (plus the enabled receiver features, config.features);
    `receivers` maps name -> frozen Receiver (not saved; LoRA weights inside them are)."""

    def __init__(self, config: Config, receivers: dict[str, Receiver], source: Receiver | None = None):
        super().__init__()
        enc = config.encoder
        self.config = config
        self.receiver_names = [r.name for r in config.receivers]
        missing = [n for n in self.receiver_names if n not in receivers]
        if missing:
            raise ValueError(f"LatentWire needs loaded receivers {missing}")
        self.total_slots = enc.M + enc.private_slots * len(self.receiver_names)
        self.encoder = build_encoder(_with_slots(enc, self.total_slots), source)
        warm = hasattr(self.encoder, "warm_start_map")   # an encoder that starts in embedding space
        target_rms = {name: embedding_rms(receivers[name].model.get_input_embeddings().weight)
                      for name in self.receiver_names}
        if hasattr(self.encoder, "build_adapters"):       # an encoder that brings its own decoders
            self.adapters = self.encoder.build_adapters({n: receivers[n] for n in self.receiver_names}, target_rms)
        else:
            self.adapters = nn.ModuleDict({
                name: Adapter(enc.d_z, receivers[name].model.config.hidden_size, target_rms[name],
                              linear_skip=warm)
                for name in self.receiver_names})
        if warm:
            for name in self.receiver_names:
                self.adapters[name].warm_start_(*self.encoder.warm_start_map(receivers[name]))
        self.features = ReceiverFeatures(config.features, {n: receivers[n] for n in self.receiver_names})

    def slots_of(self, name: str) -> list[int]:
        """Latent slot indices receiver `name` reads: the shared M, then its private block."""
        shared, private = self.config.encoder.M, self.config.encoder.private_slots
        index = self.receiver_names.index(name)
        return list(range(shared)) + list(range(shared + index * private, shared + (index + 1) * private))

    def featurize(self, question: str, context: str) -> torch.Tensor:
        """The encoder's frozen per-example features of one prompt (cacheable)."""
        if not isinstance(question, str) or not isinstance(context, str) or not (question.strip() or context.strip()):
            raise ValueError("encode needs a non-empty question or context (strings)")
        if len(question) + len(context) > MAX_FIELD_CHARS:
            raise ValueError(f"prompt of {len(question) + len(context)} characters is over the limit of "
                             f"{MAX_FIELD_CHARS}")
        carried, _ = split_content(question, context, self.config.encoder.input)
        if self.config.encoder.input == "context" and not context.strip():
            raise ValueError("encoder.input=context needs a non-empty context")
        return self.encoder.featurize(carried)

    def featurize_text(self, text: str) -> torch.Tensor:
        """The encoder's features of a raw text (span tasks: the latent carries exactly this text)."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("encode needs non-empty text")
        return self.encoder.featurize(text)

    def text_after(self, question: str, context: str) -> str:
        """The text a receiver reads right after the latent: the question in context-only mode, else ""."""
        return split_content(question, context, self.config.encoder.input)[1]

    def latent(self, features: list[torch.Tensor], bits: int | None = None) -> torch.Tensor:
        """Z [B, total_slots, d_z] from per-example features, quantised as the wire will (straight-through)."""
        batch, mask = pad_features([f.to(self.device) for f in features])
        z = self.encoder(batch, mask)
        return fake_quantize(z, bits or self.config.wire.bits, self.config.wire.group_size)

    def forward(self, features: list[torch.Tensor], bits: int | None = None) -> dict[str, torch.Tensor]:
        """Training forward: one latent, every receiver's calibrated embeddings {name: [B, M_r, d_model]}.

        The whole trainable path runs here so that a DDP wrapper (accelerate) sees it.
        """
        z = self.latent(features, bits)
        return {name: self.receiver_embeds(name, z) for name in self.receiver_names}

    def receiver_embeds(self, name: str, z: torch.Tensor) -> torch.Tensor:
        """Z [B, slots, d_z] -> receiver `name`'s calibrated input embeddings [B, M_r, d_model]."""
        return self.adapters[name](z[:, self.slots_of(name)])

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def checkpoint_id(self) -> bytes:
        """8 bytes identifying these trained weights (stamped into every packet)."""
        digest = hashlib.sha256()
        for key, value in sorted(self.state_dict().items()):
            digest.update(key.encode())
            digest.update(value.detach().float().cpu().numpy().tobytes())
        return digest.digest()[:8]

    @torch.no_grad()
    def encode(self, question: str, context: str, bits: int | None = None) -> bytes:
        """Sender side: one prompt -> a wire packet (bytes)."""
        z = self.latent([self.featurize(question, context)], bits)[0]
        return encode_latent(z.cpu(), bits or self.config.wire.bits, self.config.wire.group_size,
                             self._id())

    def decode(self, packet: bytes) -> torch.Tensor:
        """Receiver side: a packet -> Z [slots, d_z]; refuses packets of another checkpoint or shape."""
        z = decode_latent(packet, expected_checkpoint_id=self._id())
        if tuple(z.shape) != (self.total_slots, self.config.encoder.d_z):
            raise ValueError(f"packet latent shape {tuple(z.shape)} does not match this model's "
                             f"{(self.total_slots, self.config.encoder.d_z)}")
        return z.to(self.device)

    def attach(self, receivers: dict[str, Receiver], builders: dict) -> None:
        """Give the model its loaded receivers and prompt builders (by name), so that it can `answer`."""
        self._serving = (receivers, builders)

    @torch.no_grad()
    def answer(self, packet: bytes, receiver: str, question: str = "", max_new_tokens: int = 16) -> str:
        """Receiver side: a packet (+ the question as text, for context-only packets) -> receiver
        `receiver`'s greedy answer (text, cut at its first newline)."""
        from latentwire.eval.generation import greedy_decode
        from latentwire.eval.methods import PromptInput
        from latentwire.latent_inputs import latent_prompt_batch

        receivers, builders = getattr(self, "_serving", ({}, {}))
        if receiver not in receivers:
            raise ValueError(f"no receiver {receiver!r} attached; this model serves {sorted(receivers)}")
        reader, builder = receivers[receiver], builders[receiver]
        z = self.decode(packet)
        embeds = self.receiver_embeds(receiver, z[None]).to(reader.device, reader.model.dtype)
        after = builder.encode(f"\nQuestion: {question}") if question else []
        if self.config.encoder.input == "context" and not question:
            raise ValueError("this model's packets carry only the context: answer(packet, receiver, question=...)")
        prompt = PromptInput("", embeds=latent_prompt_batch(reader, builder, embeds, [after])[0][0],
                             latent_embeds=embeds[0])
        pad = reader.tokenizer.pad_token_id if reader.tokenizer.pad_token_id is not None else builder.stop_ids[0]
        ids = greedy_decode(reader, [prompt], max_new_tokens, builder.stop_ids, pad, self.features).generated[0]
        return reader.tokenizer.decode(ids, skip_special_tokens=True).strip().split("\n")[0].strip()

    def _id(self) -> bytes:
        if not hasattr(self, "_cached_id") or self.training:
            self._cached_id = self.checkpoint_id()
        return self._cached_id


def _with_slots(encoder_config, slots: int):
    from dataclasses import replace
    return replace(encoder_config, M=slots)
