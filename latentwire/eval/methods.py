"""Baseline methods: how a receiver is given each example's prompt.

A method turns one QA example into a `PromptInput` (token ids or input embeddings) plus what it
cost to send. Methods are looked up by name in `METHODS`; `token_budget` takes the budget M.
Nothing here sees the gold answers.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch
import zstandard

from latentwire.adapters import embedding_rms, rms_calibrate
from latentwire.data.examples import QAExample
from latentwire.latent_inputs import latent_prompt_batch, latent_prompt_embeds
from latentwire.llm.loader import Receiver
from latentwire.prompt import PromptBuilder, format_content

_ZSTD = zstandard.ZstdCompressor(level=19)


@dataclass
class PromptInput:
    """One example's prompt for one receiver: ids (token path) or embeds [T, d] (embedding path)."""

    content: str                     # the content segment as text (for alignment of the answer)
    ids: list[int] | None = None
    embeds: torch.Tensor | None = None
    text_bytes: int = 0              # UTF-8 bytes the sender transmits (question + context)
    text_bytes_zstd: int = 0         # the same, zstd level 19
    wire_bytes: int | None = None    # bytes of the packet actually sent (latent methods)
    latent: torch.Tensor | None = None  # the decoded latent [slots, d_z] (latent methods; diagnostics)
    content_tokens: int = 0          # receiver tokens of the content a latent replaces (latent methods)
    latent_embeds: torch.Tensor | None = None  # the adapter's output [M_r, d] (what receiver features read)
    after_ids: list[int] | None = None  # ids read right after the latent (the question, context-only mode)

    @property
    def length(self) -> int:
        return len(self.ids) if self.ids is not None else int(self.embeds.shape[0])


@dataclass
class MethodContext:
    """What a method may use to build one example's prompt (never the gold answers)."""

    receiver: Receiver
    builder: PromptBuilder
    budget: int = 0                  # token_budget: M
    bits: int = 16                   # latent: the bit width sent
    system: object | None = None     # latent: the trained LatentWire model

    @property
    def features(self):
        """The trained model's receiver features (a ReceiverFeatures), or None."""
        return getattr(self.system, "features", None)


def message_bytes(question: str, context: str) -> tuple[int, int]:
    """(UTF-8 bytes, zstd-19 bytes) of the message a sender transmits: question + newline + context."""
    message = f"{question}\n{context}".encode("utf-8")
    return len(message), len(_ZSTD.compress(message))


def _text(example: QAExample, ctx: MethodContext) -> PromptInput:
    content = format_content(example.question, example.context)
    return PromptInput(content, ids=ctx.builder.prompt_ids(content), **_bytes(example.question, example.context))


def _token_budget(example: QAExample, ctx: MethodContext) -> PromptInput:
    context = ctx.builder.truncate_context(example.question, example.context, ctx.budget)
    content = format_content(example.question, context)
    return PromptInput(content, ids=ctx.builder.prompt_ids(content), **_bytes(example.question, context))


def _context_budget(example: QAExample, ctx: MethodContext) -> PromptInput:
    ids = ctx.builder.encode(example.context)
    context = ctx.builder.tokenizer.decode(ids[:ctx.budget]).strip() if len(ids) > ctx.budget else example.context
    content = format_content(example.question, context)
    return PromptInput(content, ids=ctx.builder.prompt_ids(content), **_bytes(example.question, context))


@torch.no_grad()
def _embed_raw(example: QAExample, ctx: MethodContext) -> PromptInput:
    prompt = _text(example, ctx)
    ids = torch.tensor([prompt.ids], device=ctx.receiver.device)
    return PromptInput(prompt.content, embeds=ctx.receiver.embed(ids)[0], text_bytes=prompt.text_bytes,
                       text_bytes_zstd=prompt.text_bytes_zstd)


@torch.no_grad()
def _embed_anchor(example: QAExample, ctx: MethodContext) -> PromptInput:
    content = format_content(example.question, example.context)
    prefix, body, anchor = ctx.builder.segment_ids(content)
    ids = torch.tensor([prefix + body + anchor], device=ctx.receiver.device)
    return PromptInput(content, embeds=ctx.receiver.embed(ids)[0], **_bytes(example.question, example.context))


@torch.no_grad()
def _embed_adapter(example: QAExample, ctx: MethodContext) -> PromptInput:
    content = format_content(example.question, example.context)
    body = torch.tensor([ctx.builder.segment_ids(content)[1]], device=ctx.receiver.device)
    target = embedding_rms(ctx.receiver.model.get_input_embeddings().weight)
    calibrated = rms_calibrate(ctx.receiver.embed(body).float(), target).to(ctx.receiver.model.dtype)
    embeds = latent_prompt_embeds(ctx.receiver, ctx.builder, calibrated)[0]
    return PromptInput(content, embeds=embeds, **_bytes(example.question, example.context))


@torch.no_grad()
def _latent(example: QAExample, ctx: MethodContext) -> PromptInput:
    if ctx.system is None:
        raise ValueError("eval method 'latent' needs a trained model: set checkpoint=<checkpoint dir>")
    packet = ctx.system.encode(example.question, example.context, ctx.bits)
    z = ctx.system.decode(packet)                                              # [slots, d_z]
    latent = ctx.system.receiver_embeds(ctx.receiver.name, z[None]).to(ctx.receiver.device)
    text = ctx.system.text_after(example.question, example.context)       # the question, context-only mode
    after = ctx.builder.encode(text) if text else []
    content = format_content(example.question, example.context)
    return replace(latent_prompt(ctx, latent[0], after), content=content, latent=z.cpu(),
                   wire_bytes=len(packet) + len(text.encode("utf-8")),
                   content_tokens=len(ctx.builder.encode(content)) - len(after),
                   **_bytes(example.question, example.context))


def latent_prompt(ctx: MethodContext, latent_embeds: torch.Tensor, after_ids: list[int]) -> PromptInput:
    """A prompt from receiver-side latent embeddings [M_r, d] (M_r may be 0) and the ids read after them."""
    embeds = latent_prompt_batch(ctx.receiver, ctx.builder, latent_embeds[None], [after_ids])[0][0]
    return PromptInput("", embeds=embeds, latent_embeds=latent_embeds if latent_embeds.shape[0] else None,
                       after_ids=after_ids)


def _bytes(question: str, context: str) -> dict[str, int]:
    raw, packed = message_bytes(question, context)
    return {"text_bytes": raw, "text_bytes_zstd": packed}


@dataclass(frozen=True)
class Method:
    """A named way of prompting; `uses_budget` methods run once per M in eval.budgets."""

    name: str
    build: Callable[[QAExample, MethodContext], PromptInput]
    uses_budget: bool = False
    uses_bits: bool = False
    description: str = ""


METHODS: dict[str, Method] = {m.name: m for m in [
    Method("text", _text, description="the full prompt as token ids"),
    Method("token_budget", _token_budget, uses_budget=True,
           description="context cut so that question + context fit in M tokens"),
    Method("context_budget", _context_budget, uses_budget=True,
           description="context cut to its first M tokens, the question in full (compare: context-only latents)"),
    Method("embed_raw", _embed_raw, description="the receiver's own embeddings of the text prompt"),
    Method("embed_anchor", _embed_anchor,
           description="prefix + content embedded separately as the latent path will, then the anchor"),
    Method("embed_adapter", _embed_adapter,
           description="content embeddings through the adapter's per-example RMS calibration, assembled "
                       "exactly as a latent is (prefix + slots + anchor)"),
    Method("latent", _latent, uses_bits=True,
           description="the trained latent, sent as a packet at each wire.eval_bits, through the adapter"),
]}
