"""The shuffled-packet controls of a latent row: does a receiver's answer depend on its own packet?

`shuffle_test` scores each example's gold answer with its own latent, example i-1's and none
(bits_specific, bits_prior: latentwire.shuffle_test); `shuffled_answers` generates each answer from
example i-1's latent and scores it (f1_shuffled: what a trained reader reaches without its packet).
Example i-1's packet is read as receiver i would read it: for question i (a two-resolution reader marks
its focus with the question it holds).
"""
from __future__ import annotations

from dataclasses import replace

import torch

from latentwire.data.examples import QAExample
from latentwire.data.loaders import iter_batches
from latentwire.eval.generation import generate_and_score, greedy_decode
from latentwire.eval.methods import MethodContext, PromptInput, latent_prompt
from latentwire.eval.squad_metrics import best_em_f1, clean_prediction
from latentwire.shuffle_test import LN2, summarize


def other_prompt(ctx: MethodContext, prompts: list[PromptInput], i: int, question: str) -> PromptInput:
    """Example i's prompt with example i-1's latent embeddings [M_r, d] (and its layer states: they depend on
    the packet alone) as the receiver of example i (asking `question`) reads them."""
    other = prompts[(i - 1) % len(prompts)]
    latent = other.read_for(question) if other.read_for is not None else other.latent_embeds
    return replace(latent_prompt(ctx, latent, prompts[i].after_ids), layer_states=other.layer_states)


def shuffle_test(ctx: MethodContext, prompts: list[PromptInput], questions: list[str], gold_ids: list[list[int]],
                 own_nll: list[list[float]], batch_size: int, pad_id: int) -> dict[str, float]:
    """The shuffled-latent test on the gold answers (see latentwire.shuffle_test): example i scored
    with its own latent (`own_nll`, nats per token), with example i-1's latent, and with none (each
    keeping its own question text in context-only mode), all read through the trained receiver features."""
    n = len(prompts)
    nothing = prompts[0].latent_embeds[:0]
    conditions = {"shuffled": ([other_prompt(ctx, prompts, i, questions[i]) for i in range(n)], ctx.features),
                  "none": ([latent_prompt(ctx, nothing, prompts[i].after_ids) for i in range(n)], ctx.features)}
    bits = {"own": torch.tensor([sum(x) / LN2 for x in own_nll])}
    for condition, (inputs, features) in conditions.items():
        values = [0.0] * n
        for batch in iter_batches(list(range(n)), batch_size):
            out = generate_and_score(ctx.receiver, [inputs[i] for i in batch], [gold_ids[i] for i in batch], 1,
                                     ctx.builder.stop_ids, pad_id, features)
            for j, i in enumerate(batch):
                values[i] = sum(out.answer_nll[j]) / LN2
        bits[condition] = torch.tensor(values)
    return summarize(bits["own"], bits["shuffled"], bits["none"])


def shuffled_answers(ctx: MethodContext, prompts: list[PromptInput], examples: list[QAExample],
                     max_new_tokens: int, batch_size: int, pad_id: int) -> dict[str, float]:
    """EM/F1 of the answers generated for example i from example i-1's latent (its own question text
    kept in context-only mode): {"em_shuffled", "f1_shuffled"}."""
    n = len(prompts)
    inputs = [other_prompt(ctx, prompts, i, examples[i].question) for i in range(n)]
    scores = []
    for batch in iter_batches(list(range(n)), batch_size):
        out = greedy_decode(ctx.receiver, [inputs[i] for i in batch], max_new_tokens, ctx.builder.stop_ids, pad_id,
                            ctx.features)
        for j, i in enumerate(batch):
            text = ctx.receiver.tokenizer.decode(out.generated[j], skip_special_tokens=True)
            scores.append(best_em_f1(clean_prediction(text), examples[i].answers))
    return {"em_shuffled": sum(s[0] for s in scores) / n, "f1_shuffled": sum(s[1] for s in scores) / n}
