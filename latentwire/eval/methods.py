"""Baseline methods: how a receiver is given each example's prompt.

A method turns one QA example into a `PromptInput` (token ids or input embeddings) plus what it
cost to send. Methods are looked up by name in `METHODS`; a method with a setting (`token_budget`'s budget
M, `latent`'s bits, ...) runs once per value. The peers of the Pareto benchmark are in
latentwire.eval.peer_methods. Nothing here sees the gold answers.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable

import torch

from latentwire.adapters import embedding_rms, rms_calibrate
from latentwire.adapters.layer_merge import LayerStates, check_layer
from latentwire.adapters.position_budget import ReadingAids, kept_indices
from latentwire.data.examples import QAExample
from latentwire.eval import peer_methods
from latentwire.eval.peer_methods import message_text_bytes, text_prompt
from latentwire.config import REGIMES
from latentwire.eval.prompt_input import MethodContext, PromptInput
from latentwire.sentences import SCORERS, sender_choice
from latentwire.latent_inputs import latent_prompt_batch, latent_prompt_embeds
from latentwire.prompt import CONTEXT_LABEL, format_content

def _text(example: QAExample, ctx: MethodContext) -> PromptInput:
    return text_prompt(ctx, example, example.context)


def _token_budget(example: QAExample, ctx: MethodContext) -> PromptInput:
    return text_prompt(ctx, example, ctx.builder.truncate_context(example.question, example.context, ctx.budget))


def _context_budget(example: QAExample, ctx: MethodContext) -> PromptInput:
    ids = ctx.builder.encode(example.context)
    context = ctx.builder.tokenizer.decode(ids[:ctx.budget]).strip() if len(ids) > ctx.budget else example.context
    return text_prompt(ctx, example, context)


@torch.no_grad()
def _embed_raw(example: QAExample, ctx: MethodContext) -> PromptInput:
    prompt = _text(example, ctx)
    ids = torch.tensor([prompt.ids], device=ctx.receiver.device)
    return replace(prompt, ids=None, embeds=ctx.receiver.embed(ids)[0], receive=None)


@torch.no_grad()
def _embed_anchor(example: QAExample, ctx: MethodContext) -> PromptInput:
    content = format_content(example.question, example.context)
    prefix, body, anchor = ctx.builder.segment_ids(content)
    ids = torch.tensor([prefix + body + anchor], device=ctx.receiver.device)
    return replace(_text(example, ctx), content=content, ids=None, embeds=ctx.receiver.embed(ids)[0], receive=None)


@torch.no_grad()
def _embed_adapter(example: QAExample, ctx: MethodContext) -> PromptInput:
    content = format_content(example.question, example.context)
    body = torch.tensor([ctx.builder.segment_ids(content)[1]], device=ctx.receiver.device)
    target = embedding_rms(ctx.receiver.model.get_input_embeddings().weight)
    calibrated = rms_calibrate(ctx.receiver.embed(body).float(), target).to(ctx.receiver.model.dtype)
    embeds = latent_prompt_embeds(ctx.receiver, ctx.builder, calibrated)[0]
    return replace(_text(example, ctx), content=content, ids=None, embeds=embeds, receive=None)


@torch.no_grad()
def _latent(example: QAExample, ctx: MethodContext) -> PromptInput:
    if ctx.system is None:
        raise ValueError("eval method 'latent' needs a trained model: set checkpoint=<checkpoint dir>")
    return _packet_prompt(example, ctx, lambda: ctx.system.encode(example.question, example.context, ctx.bits),
                          lambda z, question: z)


def _require_token_reader(method: str, ctx: MethodContext) -> None:
    """ValueError unless ctx holds a trained token reader (encoder.kind=token_ids), which `method` reads."""
    if ctx.system is None or not ctx.system.encoder.carries_tokens:
        raise ValueError(f"eval method {method!r} needs a token reader: checkpoint=<a run of "
                         "encoder.kind=token_ids>")


def _token_reader(method: str, focus: bool, layered: bool = False):
    """A token reader's method: the lossless packet read ctx.k tokens a position (within
    ctx.max_position_share), at two resolutions (the receiver's focus sentences at k = 1) when `focus`, with
    pooled states from decoder layer ctx.merge_layer on when `layered`."""
    @torch.no_grad()
    def build(example: QAExample, ctx: MethodContext) -> PromptInput:
        _require_token_reader(method, ctx)
        layer = ctx.merge_layer if layered else ctx.system.config.encoder.merge_layer   # the reader's own
        if layer and focus:
            raise ValueError(f"{method} reads at two resolutions; this reader merges from decoder layer "
                             f"{layer} on (encoder.merge_layer), which reads uniform groupings only")
        after = ctx.system.text_after(example.question, example.context)
        view = (lambda z, question: ctx.system.token_reading(z, question, True)) if focus else _budgeted(ctx, after)
        return _packet_prompt(example, ctx, lambda: ctx.system.encode(example.question, example.context), view,
                              _layered(ctx, layer))
    return build


def _budgeted(ctx: MethodContext, after: str) -> Callable:
    """(z, question) -> z (a decoded TokenBatch of one) read uniformly at ctx.k, within ctx.max_position_share
    of the positions the packet's text would take in the receiver's text prompt, `after` read after it
    (PromptBuilder.text_positions; k >= 2): the tokens ctx.leave_out's rules offer left out first
    (adapters.position_budget) and, if still over (rules without `predictable`), groups of k + 1
    (TokenBatch.capped)."""
    def view(z, question: str):
        if not ctx.max_position_share or ctx.k == 1:
            return z.uniform()
        wire = ctx.system.encoder.wire
        ids = z.ids[0][z.mask[0] > 0].tolist()
        positions = max(1, int(ctx.max_position_share * ctx.builder.text_positions(wire.vocabulary.decode(ids),
                                                                                   after)))
        aids = ctx.resource(f"reading_aids:{wire.id.hex()}",
                            lambda: ReadingAids.of(wire.vocabulary, wire.table, CONTEXT_LABEL))
        return z.selected(kept_indices(ids, ctx.k, positions, list(ctx.leave_out), aids)).capped(ctx.k, positions)
    return view


def _layered(ctx: MethodContext, layer: int) -> Callable | None:
    """z (a uniform TokenBatch of one) -> the LayerStates a reading at ctx.k puts in at decoder `layer`
    (latentwire.adapters.layer_merge), or None where it reads no layer states (layer 0 or k = 1)."""
    if not layer or ctx.k == 1:
        return None
    check_layer(ctx.receiver.model, layer)
    return lambda z: LayerStates(layer, len(ctx.builder.prefix_ids),
                                 ctx.system.layer_states(ctx.receiver.name, z, ctx.k, layer)[0])


@torch.no_grad()
def _latent_selected(example: QAExample, ctx: MethodContext) -> PromptInput:
    """Question-aware token packets: the sender keeps the encoder.focus sentences (at least one) that
    encoder.focus_scorer ranks highest for the question and sends only their tokens, read at ctx.k."""
    _require_token_reader("latent_selected", ctx)
    e = ctx.system.config.encoder
    scorer = ctx.resource(f"scorer:{e.focus_scorer}", SCORERS[e.focus_scorer])
    chosen = lambda: sender_choice(example.question, example.context, e.focus, scorer)  # noqa: E731
    return _packet_prompt(example, ctx, lambda: ctx.system.encode(example.question, chosen()),
                          _budgeted(ctx, ctx.system.text_after(example.question, example.context)),
                          _layered(ctx, ctx.system.config.encoder.merge_layer))


@torch.no_grad()
def _latent_salient(example: QAExample, ctx: MethodContext) -> PromptInput:
    """A token reader's lossless packet in the positions of a uniform reading at ctx.k: the context's least
    predictable tokens a position each, the runs between them eval.salient_run_k a position (the receiver
    marks them from the decoded ids alone; latentwire.adapters.salient)."""
    _require_token_reader("latent_salient", ctx)
    if ctx.system.config.encoder.merge_layer:
        raise ValueError("latent_salient reads runs of its own lengths; this reader merges from decoder layer "
                         f"{ctx.system.config.encoder.merge_layer} on (encoder.merge_layer): uniform readings only")
    return _packet_prompt(example, replace(ctx, k=ctx.salient_run_k),
                          lambda: ctx.system.encode(example.question, example.context),
                          lambda z, question: ctx.system.salient_reading(z, ctx.k, ctx.salient_run_k))


def _packet_prompt(example: QAExample, ctx: MethodContext, encode: Callable[[], bytes],
                   view: Callable[[object, str], object], layered: Callable | None = None) -> PromptInput:
    """A trained model's prompt: `encode()` -> the packet (timed as the sender's work); the receiver decodes
    it, `view`s what it decoded for the question it holds (a token reader: its focus) and reads it at ctx.k
    (timed as receive()), `layered(z)` giving the LayerStates it puts in at a decoder layer when given.
    `read_for(question)` is the same packet read for another question (the shuffled controls: a receiver
    marks its focus with its own question, whatever packet it got)."""
    started = time.perf_counter()
    packet = encode()
    sender_seconds = time.perf_counter() - started
    text = ctx.system.text_after(example.question, example.context)       # the question, context-only mode

    def read(question: str) -> tuple[torch.Tensor, object]:   # the packet's receiver embeddings [M_r, d]
        z = view(ctx.system.as_batch(ctx.system.decode(packet)), question)  # [1, slots, d_z] or a TokenBatch
        return ctx.system.receiver_embeds(ctx.receiver.name, z, ctx.k or None).to(ctx.receiver.device)[0], z

    def receive() -> tuple[PromptInput, object]:     # what the receiver does with the packet it holds
        latent, z = read(example.question)
        prompt = latent_prompt(ctx, latent, ctx.builder.encode(text) if text else [])
        return (replace(prompt, layer_states=layered(z)) if layered else prompt), z
    prompt, z = receive()
    content = format_content(example.question, example.context)
    raw, packed = message_text_bytes(example.question, example.context)
    latent = None if ctx.system.encoder.carries_tokens else z[0].cpu()   # token packets: no continuous latent
    question = example.question if text else ""   # context-only: the question crosses (the template does not)
    tokens = ctx.system.encoder.carries_tokens
    coded = len(packet) + len(ctx.system.encoder.wire.message(question)) if question and tokens else None
    return replace(prompt, content=content, latent=latent, wire_bytes=len(packet) + len(question.encode("utf-8")),
                   wire_bytes_coded_question=coded,
                   content_tokens=len(ctx.builder.encode(content)) - len(prompt.after_ids), text_bytes=raw,
                   text_bytes_zstd=packed, sender_seconds=sender_seconds, receive=lambda: receive()[0],
                   read_for=lambda question: read(question)[0])


def latent_prompt(ctx: MethodContext, latent_embeds: torch.Tensor, after_ids: list[int]) -> PromptInput:
    """A prompt from receiver-side latent embeddings [M_r, d] (M_r may be 0) and the ids read after them."""
    embeds = latent_prompt_batch(ctx.receiver, ctx.builder, latent_embeds[None], [after_ids])[0][0]
    return PromptInput("", embeds=embeds, latent_embeds=latent_embeds if latent_embeds.shape[0] else None,
                       after_ids=after_ids)


SETTINGS = {"budget": "M", "bits": "bits", "sentences": "sentences", "rate": "rate", "k": "k"}
"""A method's setting -> the metrics row column that holds its value (the config lists them: eval.budgets,
wire.eval_bits, eval.sentences, eval.rates, eval.ks)."""


@dataclass(frozen=True)
class Method:
    """A named way of prompting. A method with a `setting` runs once per value of that setting's config list;
    `regimes` are the ones it runs in (latentwire.config.REGIMES); `coding` is the wire coding its
    wire_bytes counts (text methods: utf8, lm_coded: lm, latents: their packet); a `trained` method reads
    through the trained model (its receiver features on, the shuffled-latent controls run); `skips` are
    setting values it does not run because another row is the same reading (latent_focus at k = 1 is
    latent_k at k = 1: every token has its own position either way); a `budgeted` method's merged readings
    keep within eval.max_position_share (MethodContext.max_position_share)."""

    name: str
    build: Callable[[QAExample, MethodContext], PromptInput]
    setting: str | None = None
    description: str = ""
    coding: str = "utf8"
    regimes: tuple[str, ...] = REGIMES
    trained: bool = False
    skips: tuple = ()
    budgeted: bool = False


METHODS: dict[str, Method] = {m.name: m for m in [
    Method("text", _text, description="the full prompt as token ids"),
    Method("no_context", peer_methods.no_context, description="the question alone: the floor of every score"),
    Method("token_budget", _token_budget, "budget", regimes=("question_aware",),
           description="context cut so that question + context fit in M tokens"),
    Method("context_budget", _context_budget, "budget",
           description="context cut to its first M tokens, the question in full (compare: context-only latents)"),
    Method("select_lexical", peer_methods.selection("lexical"), "sentences",
           description="the question + the context sentences sharing most words with it (eval.sentences of them; "
                       "context-only: the whole context crosses and the receiver selects)"),
    Method("select_minilm", peer_methods.selection("minilm"), "sentences",
           description="the same, sentences ranked by all-MiniLM-L6-v2 cosine to the question"),
    Method("llmlingua", peer_methods.llmlingua, "rate",
           description="the context pruned by LLMLingua (SmolLM2 scoring) toward each eval.rates, "
                       "question-conditioned where the sender sees the question"),
    Method("lm_coded", peer_methods.lm_coded, coding="lm",
           description="the full text range-coded under SmolLM2's next-token probabilities; the receiver "
                       "decodes it token by token, then reads the text"),
    Method("embed_raw", _embed_raw, description="the receiver's own embeddings of the text prompt"),
    Method("embed_anchor", _embed_anchor,
           description="prefix + content embedded separately as the latent path will, then the anchor"),
    Method("embed_adapter", _embed_adapter,
           description="content embeddings through the adapter's per-example RMS calibration, assembled "
                       "exactly as a latent is (prefix + slots + anchor)"),
    Method("latent", _latent, "bits", coding="packet", trained=True,
           description="the trained latent, sent as a packet at each wire.eval_bits, through the adapter"),
    Method("latent_k", _token_reader("latent_k", False), "k", coding="packet", trained=True, budgeted=True,
           description="a token reader's lossless packet (every context token, entropy-coded), read k tokens "
                       "a position at each eval.ks"),
    Method("latent_deep", _token_reader("latent_deep", False, layered=True), "k", coding="packet", trained=True,
           skips=(1,), budgeted=True,
           description="latent_k's reading with the merge moved up to decoder layer eval.merge_layer: "
                                   "the context's first layers read a token a position, their states pooled k a "
                                   "position replace the merged positions' there (adapters.layer_merge)"),
    Method("latent_focus", _token_reader("latent_focus", True), "k", coding="packet", trained=True, skips=(1,),
           description="the same packet at two resolutions: the sentences the receiver picks for the question "
                       "(encoder.focus, at least one) a token a position, the rest k a position"),
    Method("latent_salient", _latent_salient, "k", coding="packet", trained=True, skips=(1,),
           description="the same packet in the positions of a uniform reading at k: its least predictable "
                       "tokens (unigram bits) a position each, the rest eval.salient_run_k a position"),
    Method("latent_selected", _latent_selected, "k", coding="packet", trained=True, regimes=("question_aware",),
           budgeted=True,
           description="question-aware token packet: only the sentences the sender picks for the question "
                       "(encoder.focus, at least one), read k tokens a position"),
]}

__all__ = ["METHODS", "SETTINGS", "Method", "MethodContext", "PromptInput"]
