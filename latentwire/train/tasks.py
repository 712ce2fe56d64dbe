"""Training tasks: what the latent is made from and what the receiver must produce from it.

    qa              latent of question + context (or context alone), target = the answer's first K tokens
    reconstruction  latent of a span of the context, target = the same span (ICAE's pretraining)
    continuation    latent of a span, target = the span that follows it

A span is `loss.span_tokens` tokens of the context under the first receiver's tokenizer, taken as
text, so that every receiver is asked for the same text in its own tokens.
"""
from __future__ import annotations

from dataclasses import replace

from latentwire.config import Config, PromptConfig
from latentwire.data.examples import LoadReport, QAExample
from latentwire.prompt import AlignmentError, PromptBuilder
from latentwire.train.features import TrainItem

SPAN_PROMPTS = {
    "reconstruction": ("Repeat the text word for word.", "Text:"),
    "continuation": ("Continue the text.", "Continuation:"),
}


def task_prompt(config: Config) -> PromptConfig:
    """The receiver prompt of the configured task (the QA prompt, or the span task's own)."""
    if config.loss.objective == "qa":
        return config.prompt
    instruction, anchor = SPAN_PROMPTS[config.loss.objective]
    return replace(config.prompt, instruction=instruction, anchor=anchor)


def target_length(config: Config) -> int:
    """Target tokens scored per example: loss.K for qa, up to span_tokens + a margin for span tasks
    (another tokenizer may need a few more tokens for the same text)."""
    return config.loss.K if config.loss.objective == "qa" else config.loss.span_tokens + 16


def span_texts(context: str, tokenizer, span_tokens: int, objective: str) -> tuple[str, str] | None:
    """(text the latent is made from, text the receiver must produce), or None if the context is too short."""
    ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    need = span_tokens * (2 if objective == "continuation" else 1)
    if len(ids) < need:
        return None
    first = tokenizer.decode(ids[:span_tokens]).strip()
    if objective == "reconstruction":
        return first, first
    return first, tokenizer.decode(ids[span_tokens:2 * span_tokens]).strip()


def build_span_items(examples: list[QAExample], featurize_text, builders: dict[str, PromptBuilder],
                     config: Config) -> tuple[list[TrainItem], LoadReport]:
    """TrainItems of a span task: features of the source span, per receiver the target span's ids."""
    report, items = LoadReport(), []
    first = next(iter(builders.values())).tokenizer
    length = target_length(config)
    for example in examples:
        texts = span_texts(example.context, first, config.loss.span_tokens, config.loss.objective)
        if texts is None:
            report.skip("context shorter than the span", example.id)
            continue
        source, target = texts
        try:
            targets = {name: b.answer_ids("", target)[:length] for name, b in builders.items()}
        except AlignmentError as error:
            report.skip(f"span alignment: {str(error)[:80]}", example.id)
            continue
        items.append(TrainItem(example, featurize_text(source), targets))
        report.kept += 1
    return items, report
