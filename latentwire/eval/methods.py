"""Baseline methods: how a receiver is given each example's prompt.

A method turns one QA example into a `PromptInput` (token ids or input embeddings) plus what it
cost to send. Methods are looked up by name in `METHODS`; `token_budget` takes the budget M.
Nothing here sees the gold answers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import zstandard

from latentwire.data.examples import QAExample
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

    @property
    def length(self) -> int:
        return len(self.ids) if self.ids is not None else int(self.embeds.shape[0])


def message_bytes(question: str, context: str) -> tuple[int, int]:
    """(UTF-8 bytes, zstd-19 bytes) of the message a sender transmits: question + newline + context."""
    message = f"{question}\n{context}".encode("utf-8")
    return len(message), len(_ZSTD.compress(message))


def _text(example: QAExample, receiver: Receiver, builder: PromptBuilder, budget: int) -> PromptInput:
    content = format_content(example.question, example.context)
    return PromptInput(content, ids=builder.prompt_ids(content), **_bytes(example.question, example.context))


def _token_budget(example: QAExample, receiver: Receiver, builder: PromptBuilder, budget: int) -> PromptInput:
    context = builder.truncate_context(example.question, example.context, budget)
    content = format_content(example.question, context)
    return PromptInput(content, ids=builder.prompt_ids(content), **_bytes(example.question, context))


@torch.no_grad()
def _embed_raw(example: QAExample, receiver: Receiver, builder: PromptBuilder, budget: int) -> PromptInput:
    prompt = _text(example, receiver, builder, budget)
    ids = torch.tensor([prompt.ids], device=receiver.device)
    return PromptInput(prompt.content, embeds=receiver.embed(ids)[0], text_bytes=prompt.text_bytes,
                       text_bytes_zstd=prompt.text_bytes_zstd)


@torch.no_grad()
def _embed_anchor(example: QAExample, receiver: Receiver, builder: PromptBuilder, budget: int) -> PromptInput:
    content = format_content(example.question, example.context)
    prefix, body, anchor = builder.segment_ids(content)
    ids = torch.tensor([prefix + body + anchor], device=receiver.device)
    return PromptInput(content, embeds=receiver.embed(ids)[0], **_bytes(example.question, example.context))


def _bytes(question: str, context: str) -> dict[str, int]:
    raw, packed = message_bytes(question, context)
    return {"text_bytes": raw, "text_bytes_zstd": packed}


@dataclass(frozen=True)
class Method:
    """A named way of prompting; `uses_budget` methods run once per M in eval.budgets."""

    name: str
    build: Callable[[QAExample, Receiver, PromptBuilder, int], PromptInput]
    uses_budget: bool = False
    description: str = ""


METHODS: dict[str, Method] = {m.name: m for m in [
    Method("text", _text, description="the full prompt as token ids"),
    Method("token_budget", _token_budget, uses_budget=True,
           description="context cut so that question + context fit in M tokens"),
    Method("embed_raw", _embed_raw, description="the receiver's own embeddings of the text prompt"),
    Method("embed_anchor", _embed_anchor,
           description="prefix + content embedded separately as the latent path will, then the anchor"),
]}
