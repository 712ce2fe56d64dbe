"""The LatentWire model: encoder -> latent Z -> (wire) -> per-receiver adapter -> frozen receiver.

Only the encoder, the adapters and the receiver features are trainable; receivers are frozen,
addressed by name and not saved (the LoRA weights inside them are).
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
from dataclasses import replace
from pathlib import Path

import torch
from accelerate.utils import set_seed
from safetensors.torch import save_file
from torch import nn

from latentwire.adapters import build_adapters
from latentwire.adapters.focus import focus_marks
from latentwire.adapters.layer_merge import batch_layer_states, check_layer, rows_of
from latentwire.adapters.salient import salient_marks, unigram_surprisal
from latentwire.atomic import atomic_directory
from latentwire.config import Config
from latentwire.data.examples import MAX_FIELD_CHARS
from latentwire.encoders import ENCODERS, build_encoder
from latentwire.encoders.blocks import pad_features
from latentwire.errors import CheckpointError
from latentwire.eval.generation import greedy_decode
from latentwire.eval.prompt_input import PromptInput
from latentwire.features import ReceiverFeatures
from latentwire.latent_inputs import answer_logits, answer_states, latent_prompt_batch
from latentwire.llm.loader import Receiver, load_receiver
from latentwire.precision import receiver_dtype, resolve_run
from latentwire.prompt import PromptBuilder, split_content
from latentwire.shuffle_test import CONDITIONS
from latentwire.train.checkpoint import (
    load_model_weights,
    read_config,
    read_json,
    resolve_checkpoint,
)
from latentwire.train.tasks import TASKS, task_of
from latentwire.weights import DEFAULT, verify_card, write_card


class LatentWire(nn.Module):
    """Encoder plus one adapter per receiver plus the enabled receiver features (config.features).

    `receivers` maps name -> frozen Receiver; the model keeps them (`.receivers`, not submodules) with a
    prompt builder each for its task (`.builders`)."""

    def __init__(self, config: Config, receivers: dict[str, Receiver], source: Receiver | None = None):
        super().__init__()
        enc = config.encoder
        self.config, self.task = config, task_of(config)
        self.receiver_names = [r.name for r in config.receivers]
        missing = [n for n in self.receiver_names if n not in receivers]
        if missing:
            raise ValueError(f"LatentWire needs loaded receivers {missing}")
        self.receivers = {n: receivers[n] for n in self.receiver_names}
        self.task_builders = {name: {n: PromptBuilder(r.tokenizer, TASKS[name].prompt(config), n)
                                     for n, r in self.receivers.items()}
                              for name in dict.fromkeys([config.loss.objective, config.loss.aux_objective]) if name}
        """task name -> receiver -> its prompt builder (the training tasks: loss.objective and aux_objective)."""
        self.builders = self.task_builders[config.loss.objective]
        self.total_slots = enc.M + enc.private_slots * len(self.receiver_names)
        self.encoder = build_encoder(replace(enc, M=self.total_slots), source)
        self.adapters = build_adapters(self.encoder.adapter, enc.d_z, self.receivers, self.encoder.link(self.receivers))
        self.features = ReceiverFeatures(config.features, self.receivers)
        for receiver in self.receivers.values() if enc.merge_layer else ():
            check_layer(receiver.model, enc.merge_layer, "encoder.merge_layer")
        self.trained = list(self.receiver_names)
        """The receivers the forward reads: every one, or while training, those train.readers names (the
        trainer sets it; the others' readers stay as loaded)."""
        self.k = config.encoder.ks[0]
        """Tokens a receiver position reads, for token packets (training sets it per batch)."""
        self.focus = False
        """Whether training reads token packets at two resolutions this step (the trainer draws it per batch)."""
        self._surprisal = None
        """Token packets: each shared id's code length in bits under the unigram table (salient reading)."""

    @contextlib.contextmanager
    def training_task(self, name: str):
        """Within the block the model is set up for training task `name` (its `.task` and prompt `.builders`);
        after it, for the task it had."""
        was = self.task, self.builders
        self.task, self.builders = TASKS[name], self.task_builders[name]
        try:
            yield self
        finally:
            self.task, self.builders = was

    def slots_of(self, name: str) -> list[int]:
        """Latent slot indices receiver `name` reads: the shared M, then its private block."""
        shared, private = self.config.encoder.M, self.config.encoder.private_slots
        index = self.receiver_names.index(name)
        return list(range(shared)) + list(range(shared + index * private, shared + (index + 1) * private))

    def featurize(self, question: str, context: str, focus: bool = False) -> torch.Tensor:
        """The encoder's frozen per-example features of one prompt (cacheable); with `focus` (training items of a
        two-resolution reader) a token encoder's features also carry the focus marks a receiver would make from
        the question (the sender itself never makes them)."""
        if not isinstance(question, str) or not isinstance(context, str) or not (question.strip() or context.strip()):
            raise ValueError("encode needs a non-empty question or context (strings)")
        if len(question) + len(context) > MAX_FIELD_CHARS:
            raise ValueError(f"prompt of {len(question) + len(context)} characters is over the limit of "
                             f"{MAX_FIELD_CHARS}")
        carried, _ = split_content(question, context, self.config.encoder.input)
        if self.config.encoder.input == "context" and not context.strip():
            raise ValueError("encoder.input=context needs a non-empty context")
        features = self.encoder.featurize(carried)
        if focus and self.encoder.carries_tokens and self.config.encoder.focus:   # what the receiver will mark
            features = self.encoder.with_focus(features, self.focus_marks(question, features[:, 0].long().tolist()))
        return features

    def focus_marks(self, question: str, ids: list[int]) -> list[int]:
        """[T] the focus marks a receiver makes for `question` on a token packet's shared ids [T]: the tokens of
        the encoder.focus sentences (at least one) that encoder.focus_scorer ranks highest."""
        e = self.config.encoder
        return focus_marks(question, ids, self.encoder.wire.vocabulary, max(1, e.focus), e.focus_scorer)

    def featurize_text(self, text: str) -> torch.Tensor:
        """The encoder's features of a raw text (span tasks: the latent carries exactly this text)."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("encode needs non-empty text")
        return self.encoder.featurize(text)

    def text_after(self, question: str, context: str) -> str:
        """The text a receiver reads right after the latent: the question in context-only mode, else ""."""
        return split_content(question, context, self.config.encoder.input)[1]

    def latent(self, features: list[torch.Tensor], bits: int | None = None):
        """Z [B, total_slots, d_z] from per-example features, quantised as the wire will (straight-through);
        for a token encoder, the TokenBatch of the examples' tokens (the wire carries them exactly)."""
        batch, mask = pad_features([f.to(self.device) for f in features])
        z = self.encoder(batch, mask)
        return self.encoder.wire_view(z, bits or self.config.wire.bits, self.config.wire.group_size)

    def receiver_inputs(self, name: str, z, k: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Z [B, slots, d_z] (or a TokenBatch, read k tokens a position, default self.k, at two resolutions
        where it has focus marks, in its layout's groups where it has one) -> receiver `name`'s input
        embeddings [B, M_r, d_model] and, for token packets, which of the M_r positions are real [B, M_r]
        (None: all of them)."""
        if self.encoder.carries_tokens:
            return self.adapters[name](z.ids, z.mask, k or self.k, z.focus, z.layout)
        return self.adapters[name](z[:, self.slots_of(name)]), None

    def training_features(self, question: str, context: str) -> torch.Tensor:
        """`featurize` as training items need it (with the receiver's focus marks where the reader uses them)."""
        return self.featurize(question, context, focus=True)

    def receiver_parameters(self, name: str) -> list[nn.Parameter]:
        """The parameters that belong to receiver `name` alone: its reader (adapter) and its features' (LoRA
        inside it and the like); the encoder's and any shared tensor belong to no one receiver."""
        return [*self.adapters[name].parameters(), *self.features.receiver_parameters(name)]

    def weights_id(self) -> str:
        """The hex id of these weights (cached outside training): what makes two latents' answers the same."""
        return self._id().hex()

    def token_reading(self, z, question: str, focus: bool):
        """A decoded token packet (TokenBatch of one) as a receiver reads it: with the focus marks it makes
        from `question` (encoder.focus sentences, at least one) or, focus False, uniformly."""
        if not focus:
            return z.uniform()
        return z.focused(self.focus_marks(question, z.ids[0][z.mask[0] > 0].tolist()))

    def salient_reading(self, z, k: int, run_k: int):
        """A decoded token packet (TokenBatch of one) marked for salient reading: its least predictable tokens
        alone, the rest run_k a position, within the ceil(T / k) positions of a uniform reading at k
        (latentwire.adapters.salient); read it at run_k."""
        if self._surprisal is None:
            self._surprisal = unigram_surprisal(self.encoder.wire.table.probabilities())
        ids = z.ids[0][z.mask[0] > 0].tolist()
        return z.focused(salient_marks(self._surprisal[ids].tolist(), k, run_k))

    def as_batch(self, z):
        """What `decode` returned as a batch of one: Z [1, slots, d_z] (a TokenBatch already is one)."""
        return z if self.encoder.carries_tokens else z[None]

    def receiver_embeds(self, name: str, z, k: int | None = None) -> torch.Tensor:
        """Z [B, slots, d_z] (or a TokenBatch of one example, read k a position) -> receiver `name`'s input
        embeddings [B, M_r, d_model]."""
        embeds, mask = self.receiver_inputs(name, z, k)
        if mask is not None and not bool(mask.all()):
            raise ValueError("receiver_embeds takes one example's tokens; a batch needs receiver_inputs' mask")
        return embeds

    def embeds(self, features: list[torch.Tensor], bits: int | None = None) -> dict[str, torch.Tensor]:
        """One latent, every receiver's calibrated embeddings {name: [B, M_r, d_model]}."""
        z = self.latent(features, bits)
        return {name: self.receiver_embeds(name, z) for name in self.receiver_names}

    def forward(self, features: list[torch.Tensor], targets: dict[str, torch.Tensor],
                after: dict[str, list[list[int]]], conditions: tuple[str, ...] = ("own",),
                bits: int | None = None, states: bool = False) -> dict[str, dict]:
        """Training forward: per-example features -> one latent Z -> each receiver's adapter -> that frozen
        receiver reading it (prefix + latent + the ids `after[name]` + answer, receiver features on) ->
        logits [B, K, V] at the K targets `targets[name]` [B, K]: {name: {condition: logits}} for each name in
        `trained` (every receiver but while training with train.readers); with `states`,
        also {name: {"states": (hidden states [L, B, S, d], mask [B, S])}} of the own reading at the positions
        after the latent (latentwire.latent_inputs.answer_states).

        Conditions (latentwire.shuffle_test): own (each example reads its own latent), shuffled (example i
        reads example i-1's), none (no latent). The whole trainable path runs here, for DDP (accelerate).
        """
        out, z = {}, self.latent(features, bits)
        if self.encoder.carries_tokens and not self.focus:
            z = z.uniform()
        for name in self.trained:
            embeds, mask = self.receiver_inputs(name, z)
            embeds = embeds.to(self.receivers[name].device)
            deep = self.layer_states(name, z)
            out[name] = {}
            for condition in conditions:
                args = (name, CONDITIONS[condition](embeds), targets[name], after[name],
                        None if mask is None else CONDITIONS[condition](mask),
                        None if deep is None else CONDITIONS[condition](deep))
                if states and condition == "own":
                    logits, hidden, suffix = self.read(*args, states=True)
                    out[name].update(own=logits, states=(hidden, suffix))
                else:
                    out[name][condition] = self.read(*args)
        return out

    def layer_states(self, name: str, z, k: int | None = None, layer: int | None = None) -> torch.Tensor | None:
        """A token batch's context states at decoder layer `layer` (default encoder.merge_layer) of receiver
        `name`, pooled k a position or over its layout's groups [B, M_r, d_model] by the reader's layer pool
        (latentwire.adapters.layer_merge; gradient to that pool alone), or None where the reader merges at the
        embeddings alone (layer 0, k = 1, or a reading with focus marks)."""
        k, layer = k or self.k, self.config.encoder.merge_layer if layer is None else layer
        if not layer or k == 1 or not self.encoder.carries_tokens or z.focus is not None:
            return None
        receiver, builder = self.receivers[name], self.builders[name]
        tokens, mask = self.receiver_inputs(name, z.uniform(), 1)     # each token its own embedding
        tokens = tokens.to(receiver.device)
        mask = torch.ones(tokens.shape[:2], device=tokens.device) if mask is None else mask.to(tokens.device)
        prefix = receiver.embed(torch.tensor([builder.prefix_ids], device=receiver.device))[0]
        with self.features.reading(name, tokens[:, :0]):
            return batch_layer_states(receiver.model, prefix, tokens, mask, k, layer, z.layout,
                                      self.adapters[name].reader.pool_states)

    def read(self, name: str, embeds: torch.Tensor, targets: torch.Tensor, after: list[list[int]],
             mask: torch.Tensor | None = None, deep: torch.Tensor | None = None, states: bool = False):
        """Receiver `name` reading latent embeds [B, M, d_model] (M may be 0; `mask` [B, M] marks the real
        positions of token packets; `deep` [B, M, d_model], their states from encoder.merge_layer on, or None):
        logits [B, K, V] at targets [B, K]; with `states`, the triple of latentwire.latent_inputs.answer_states
        (logits, hidden states after the latent, their mask)."""
        read = answer_states if states else answer_logits
        start = len(self.builders[name].prefix_ids)
        given = None if deep is None else rows_of(self.config.encoder.merge_layer, start, deep, mask)
        return read(self.receivers[name], self.builders[name], embeds, targets, self.features, after, mask, given)

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
        z = self.latent([self.featurize(question, context)], bits)
        return self.encoder.pack(z, bits or self.config.wire.bits, self.config.wire.group_size, self._id())

    def decode(self, packet: bytes):
        """Receiver side: a packet -> Z [slots, d_z] (a TokenBatch of one example for token packets); refuses
        packets of another checkpoint (vocabulary and coder, for token packets) or shape."""
        z = self.encoder.unpack(packet, self._id())
        if self.encoder.carries_tokens:
            return z.to(self.device)
        if tuple(z.shape) != (1, self.total_slots, self.config.encoder.d_z):
            raise ValueError(f"packet latent shape {tuple(z.shape)[1:]} does not match this model's "
                             f"{(self.total_slots, self.config.encoder.d_z)}")
        return z[0].to(self.device)

    def named_text(self, packet: bytes) -> str | None:
        """The source-token text a token-code packet names, slot by slot (None for encoders whose packets
        name no tokens)."""
        if not hasattr(self.encoder, "named_tokens"):
            return None
        ids = self.encoder.named_tokens(self.decode(packet)[: self.config.encoder.M])
        return self.encoder.source.tokenizer.decode(ids)

    @torch.no_grad()
    def read_packet(self, packet: bytes, receiver: str, question: str = "") -> PromptInput:
        """Receiver side: a packet (+ the question as text, for context-only packets) -> the prompt receiver
        `receiver` reads (prefix + latent + question + anchor embeddings, and the latent its features read)."""
        if receiver not in self.receivers:
            raise ValueError(f"no receiver {receiver!r}; this model serves {sorted(self.receivers)}")
        if self.config.encoder.input == "context" and not question:
            raise ValueError("this model's packets carry only the context: answer(packet, receiver, question=...)")
        reader, builder = self.receivers[receiver], self.builders[receiver]
        z = self.as_batch(self.decode(packet))
        if self.encoder.carries_tokens:     # a two-resolution reader focuses on the question's sentences
            z = self.token_reading(z, question, bool(self.config.encoder.focus and question))
        embeds = self.receiver_embeds(receiver, z)
        embeds = embeds.to(reader.device, reader.model.dtype)
        after = builder.encode(f"\nQuestion: {question}") if question else []
        return PromptInput("", embeds=latent_prompt_batch(reader, builder, embeds, [after])[0][0],
                           latent_embeds=embeds[0])

    @torch.no_grad()
    def answer(self, packet: bytes, receiver: str, question: str = "", max_new_tokens: int = 16) -> str:
        """Receiver side: a packet (+ the question as text, for context-only packets) -> receiver
        `receiver`'s greedy answer (text, cut at its first newline)."""
        return self.answer_many([packet], receiver, [question], max_new_tokens)[0]

    @torch.no_grad()
    def answer_many(self, packets: list[bytes], receiver: str, questions: list[str],
                    max_new_tokens: int = 16) -> list[str]:
        """`answer` for several packets (and their questions) decoded as one batch; every packet is checked
        before any is read."""
        if len(packets) != len(questions):
            raise ValueError(f"{len(packets)} packets but {len(questions)} questions")
        prompts = [self.read_packet(p, receiver, q) for p, q in zip(packets, questions)]
        return self.answer_prompts(prompts, receiver, max_new_tokens)

    @torch.no_grad()
    def answer_prompts(self, prompts: list[PromptInput], receiver: str, max_new_tokens: int = 16) -> list[str]:
        """Prompts made by `read_packet` for receiver `receiver` -> its greedy answers, decoded as one batch."""
        reader, builder = self.receivers[receiver], self.builders[receiver]
        decoded = greedy_decode(reader, prompts, max_new_tokens, builder.stop_ids, builder.pad_id, self.features)
        return [reader.tokenizer.decode(ids, skip_special_tokens=True).strip().split("\n")[0].strip()
                for ids in decoded.generated]

    @classmethod
    def from_pretrained(cls, path: str | Path = DEFAULT, receivers: dict[str, Receiver] | None = None,
                        use_safetensors: bool = True) -> LatentWire:
        """The trained model of a weights directory (config.json + model.safetensors + state.json), a training
        out_dir (its newest checkpoint) or a shipped name ("default"), in eval mode. Receivers missing from
        `receivers` are loaded (and added to it when given); a model card's sha256 list is checked first."""
        if not use_safetensors:
            raise CheckpointError("LatentWire reads safetensors only (use_safetensors=True)")
        folder = resolve_checkpoint(path)
        verify_card(folder)
        config = read_config(folder)
        config.resolved_dtype = ""   # where it trained says nothing of this machine: resolve `dtype` here
        system = build_system(config, receivers)
        if receivers is not None:
            receivers.update(system.receivers)
        load_model_weights(system, folder)
        state = read_json(folder / "state.json")
        if state.get("checkpoint_id") and state["checkpoint_id"] != system.checkpoint_id().hex():
            raise CheckpointError(f"{folder / 'model.safetensors'} does not match the checkpoint id in state.json "
                                  "(tampered or mixed files)")
        system.eval()
        system.source_path = folder
        return system

    def save_pretrained(self, path: str | Path, card: dict | None = None) -> Path:
        """Write the trainable weights (float32 safetensors), config.json, state.json (checkpoint id) and
        model_card.json (`card` plus every file's sha256) into directory `path`, atomically; returns it."""
        target = Path(path)
        with atomic_directory(target) as staging:
            save_file({k: v.detach().float().cpu().contiguous() if v.is_floating_point() else v.detach().cpu()
                       for k, v in self.state_dict().items()}, str(staging / "model.safetensors"))
            (staging / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2))
            (staging / "state.json").write_text(json.dumps({"checkpoint_id": self.checkpoint_id().hex()}, indent=2))
            write_card(staging, card or {})
        return target

    def _id(self) -> bytes:
        if not hasattr(self, "_cached_id") or self.training:
            self._cached_id = self.checkpoint_id()
        return self._cached_id


def build_system(config: Config, receivers: dict[str, Receiver] | None = None,
                 device: torch.device | None = None) -> LatentWire:
    """The untrained LatentWire model of `config`; receivers (by name) missing from `receivers` are loaded,
    and the frozen source LM of an encoder that reads one is found among them or loaded."""
    loaded = dict(receivers or {})
    resolved = resolve_run(config, str(device or "cpu"))
    for spec in config.receivers:
        if spec.name not in loaded:
            loaded[spec.name] = load_receiver(spec.model, spec.name, receiver_dtype(spec, config))
    if device is not None:
        for receiver in loaded.values():
            receiver.model.to(device)
    source = None
    kind = ENCODERS.get(config.encoder.kind)         # an unknown kind is refused by build_encoder
    if kind is not None and kind.needs_source:       # the encoder reads a frozen source LM
        source = next((r for r in loaded.values() if r.source == config.encoder.source_model), None)
        if source is not None and config.features.lora.enabled:
            source = copy.deepcopy(source)   # LoRA goes into the receivers; the encoder reads the plain model
        source = source or load_receiver(config.encoder.source_model, "source", resolved)
        if device is not None:
            source.model.to(device)
    set_seed(config.train.seed)
    return LatentWire(config, {s.name: loaded[s.name] for s in config.receivers}, source)
