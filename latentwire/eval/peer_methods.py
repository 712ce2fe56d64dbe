"""Text methods and the peers a latent is measured against (the Pareto benchmark): each sends text, so each
builds its prompt through `text_prompt` and says what its sender put on the wire (`Message`).

    no_context       the question alone (the floor)
    select_lexical   the `sentences` context sentences sharing most content words with the question
    select_minilm    the same, ranked by all-MiniLM-L6-v2 cosine
    llmlingua        the context pruned by LLMLingua toward `rate`, SmolLM2 (the sender model) scoring
    lm_coded         the full text range-coded under the sender model, decoded by the receiver first (the
                     question-aware message codes the context, then newline + the question)

In the context-only regime the sender never sees the question: selection then happens at the receiver (the
whole context crosses, the selection's time is the receiver's), LLMLingua prunes without the question, and
the question crosses as its own UTF-8 bytes (`sent_message`).
"""
from __future__ import annotations

import time

import zstandard

from latentwire.data.examples import QAExample
from latentwire.eval.llmlingua_peer import compress_context, offline_compressor
from latentwire.eval.prompt_input import MethodContext, PromptInput, sent_message
from latentwire.sentences import SCORERS, select_sentences
from latentwire.prompt import format_content
from latentwire.wire.lm_coding import LMCoder


_ZSTD = zstandard.ZstdCompressor(level=19)


def message_text_bytes(question: str, context: str) -> tuple[int, int]:
    """(UTF-8 bytes, zstd-19 bytes) of question + newline + context (the full text a latent replaces)."""
    message = f"{question}\n{context}".encode("utf-8")
    return len(message), len(_ZSTD.compress(message))


def text_prompt(ctx: MethodContext, example: QAExample, context: str, sent_context: str | None = None,
                select=None) -> PromptInput:
    """The prompt of `example`'s question with `context` as the receiver reads it. The sender sends
    `sent_context` (default: `context`); `select`, when given, is the receiver's own work from the sent
    context to `context` (timed in `receive`)."""
    content = format_content(example.question, context)
    sent = context if sent_context is None else sent_context

    def receive() -> PromptInput:
        chosen = select(sent) if select else context
        return PromptInput(content, ids=ctx.builder.prompt_ids(format_content(example.question, chosen)))

    raw, packed = message_text_bytes(example.question, example.context)
    return PromptInput(content, ids=ctx.builder.prompt_ids(content), text_bytes=raw, text_bytes_zstd=packed,
                       message=sent_message(ctx.regime, example.question, sent), receive=receive)


def no_context(example: QAExample, ctx: MethodContext) -> PromptInput:
    """The question alone."""
    return text_prompt(ctx, example, "")


def selection(scorer_name: str):
    """A builder keeping the ctx.sentences context sentences that `scorer_name` (SCORERS) ranks highest."""
    def build(example: QAExample, ctx: MethodContext) -> PromptInput:
        scorer = ctx.resource(f"scorer:{scorer_name}", SCORERS[scorer_name])
        choose = lambda context: select_sentences(example.question, context, ctx.sentences, scorer)  # noqa: E731
        started = time.perf_counter()
        chosen = choose(example.context)
        seconds = time.perf_counter() - started
        if ctx.regime == "context_only":     # the receiver selects from the whole context it was sent
            return text_prompt(ctx, example, chosen, sent_context=example.context, select=choose)
        prompt = text_prompt(ctx, example, chosen)
        prompt.sender_seconds = seconds
        return prompt
    return build


def llmlingua(example: QAExample, ctx: MethodContext) -> PromptInput:
    """The context pruned by LLMLingua toward ctx.rate, conditioned on the question where the sender sees it;
    computed once per (example, rate, regime) and shared by every receiver."""
    question = example.question if ctx.regime == "question_aware" else ""

    def compress() -> tuple[str, float]:
        compressor = ctx.resource("llmlingua", lambda: offline_compressor(ctx.sender))
        started = time.perf_counter()
        return compress_context(compressor, example.context, ctx.rate, question), time.perf_counter() - started
    pruned, seconds = ctx.resource(("llmlingua", example.id, ctx.rate, ctx.regime), compress)
    prompt = text_prompt(ctx, example, pruned)
    prompt.sender_seconds = seconds
    return prompt


def lm_coded(example: QAExample, ctx: MethodContext) -> PromptInput:
    """The full text range-coded under the sender model; the receiver reads what it decodes (checked against
    what was sent). Both regimes' messages come from one coding pass per example, shared by every receiver
    and both regimes: the context (context-only; the question crosses as its UTF-8), and the context then
    newline + question (question-aware), decoded in one pass too, each with its own decoding time."""
    def round_trip() -> dict:
        coder = ctx.resource("lm_coder", lambda: LMCoder(ctx.sender))
        coded = coder.encode_prefixes([example.context, f"\n{example.question}"])
        decoded = coder.decode_together([data for data, _ in coded])
        return {regime: {"bytes": len(data), "sender": sender, "decoded": text, "decode": seconds}
                for regime, (data, sender), (text, seconds) in zip(("context_only", "question_aware"), coded,
                                                                   decoded)}
    result = ctx.resource(("lm_coded", example.id), round_trip)[ctx.regime]
    sent = example.context if ctx.regime == "context_only" else f"{example.context}\n{example.question}"
    exact = result["decoded"] == sent
    arrived = result["decoded"] if ctx.regime == "context_only" else result["decoded"].rsplit("\n", 1)[0]
    context = example.context if exact else arrived        # read what arrived (the context part of it)
    prompt = text_prompt(ctx, example, context, sent_context=example.context)
    prompt.exact, prompt.sender_seconds = exact, result["sender"]
    plain = len(example.question.encode("utf-8")) if ctx.regime == "context_only" else 0
    prompt.coded_bytes = {"lm": result["bytes"] + plain}
    prompt.decode_seconds = {"lm": result["decode"]}
    return prompt
