"""What an evaluation method produces for one example and one receiver (`PromptInput`), what it may use to
produce it (`MethodContext`), and what its sender puts on the wire (`Message`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from latentwire.adapters.position_budget import DEFAULT_RULES
from latentwire.llm.loader import Receiver
from latentwire.prompt import PromptBuilder


@dataclass
class Message:
    """The text a sender transmits: `coded` goes through the wire coding, `plain` travels beside it as UTF-8
    (the question, in the context-only regime)."""

    coded: str
    plain: str = ""


def sent_message(regime: str, question: str, context: str) -> Message:
    """What a sender of `context` transmits in `regime`: question + newline + context in one message
    (question-aware), or the context coded and the question as its own UTF-8 (context-only)."""
    if regime == "context_only":
        return Message(context, question)
    return Message(f"{question}\n{context}" if context else question)


@dataclass
class PromptInput:
    """One example's prompt for one receiver: ids (token path) or embeds [T, d] (embedding path)."""

    content: str                     # the content segment as text (for alignment of the answer)
    ids: list[int] | None = None
    embeds: torch.Tensor | None = None
    text_bytes: int = 0              # UTF-8 bytes of the full question + context (what compression is against)
    text_bytes_zstd: int = 0         # the same, zstd level 19
    message: Message | None = None   # what a text method sends (its byte columns are codings of it)
    wire_bytes: int | None = None    # bytes of the packet actually sent (latent methods)
    wire_bytes_coded_question: int | None = None  # token packets, context-only: the question coded as well
    latent: torch.Tensor | None = None  # the decoded latent [slots, d_z] (latent methods; diagnostics)
    content_tokens: int = 0          # receiver tokens of the content a latent replaces (latent methods)
    latent_embeds: torch.Tensor | None = None  # the adapter's output [M_r, d] (what receiver features read)
    after_ids: list[int] | None = None  # ids read right after the latent (the question, context-only mode)
    sender_seconds: float = 0.0      # the sender's work: selection, pruning, coding, encoding
    coded_bytes: dict[str, int] = field(default_factory=dict)       # bytes of codings the method ran itself
    decode_seconds: dict[str, float] = field(default_factory=dict)  # and their decoding time
    receive: Callable[[], PromptInput] | None = None  # the receiver's work from what it holds to this prompt
    read_for: Callable[[str], torch.Tensor] | None = None  # latent methods: latent_embeds read for another question
    exact: bool = True               # a lossless method's decoded text equals the sent text
    layer_states: object | None = None  # latent_deep: LayerStates put in at a decoder layer (adapters.layer_merge)

    @property
    def length(self) -> int:
        return len(self.ids) if self.ids is not None else int(self.embeds.shape[0])


@dataclass
class MethodContext:
    """What a method may use to build one example's prompt (never the gold answers)."""

    receiver: Receiver
    builder: PromptBuilder
    budget: int = 0                  # token_budget / context_budget: M
    bits: int = 16                   # latent: the bit width sent
    system: object | None = None     # latent: the trained LatentWire model
    sentences: int = 0               # select_*: sentences kept
    rate: float = 0.0                # llmlingua: the rate asked for
    regime: str = "question_aware"   # latentwire.config.REGIMES
    sender: Receiver | None = None   # the sender's model (LLMLingua's scorer, the lm coder): the first receiver
    peers: dict = field(default_factory=dict)   # resources built once per run (scorers, compressors, coders)
    k: int = 0                       # latent_k / latent_focus: tokens a receiver position reads
    salient_run_k: int = 4           # latent_salient: tokens a position of the runs between salient tokens
    merge_layer: int = 8             # latent_deep: the decoder layer from which positions read pooled states
    max_position_share: float = 0.0  # merged token readings: at most this share of the text's positions
    leave_out: tuple[str, ...] = DEFAULT_RULES  # ... leaving these out first (eval.leave_out)

    @property
    def features(self):
        """The trained model's receiver features (a ReceiverFeatures), or None."""
        return getattr(self.system, "features", None)

    def resource(self, name: str, build: Callable[[], object]) -> object:
        """The run's shared `name` resource, built by `build()` on first use."""
        if name not in self.peers:
            self.peers[name] = build()
        return self.peers[name]
