"""Training tasks, one registry: what the latent is made from and what a receiver must produce from it.

    qa              latent of question + context (or the context alone), target = the answer's first K tokens
    qa_selected     latent of the sentences a question-aware sender selects (latent_selected's packet), target =
                    the answer; questions whose answer is not in them are skipped
    reconstruction  latent of a span of the context, target = the same span (ICAE's pretraining)
    continuation    latent of a span, target = the span that follows it

Each task declares its receiver prompt, its target length, how its training items are built and the
text a receiver reads right after the latent. `loss.objective` names one of `TASKS`; nothing outside
this module tests it. A span is `loss.span_tokens` tokens of the context under the first receiver's
tokenizer, taken as text, so that every receiver is asked for the same text in its own tokens.
"""
from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import TYPE_CHECKING

from latentwire.data.examples import LoadReport, QAExample
from latentwire.errors import AlignmentError
from latentwire.sentences import SCORERS, sender_choice
from latentwire.train.features import TrainItem, build_items

if TYPE_CHECKING:   # config -> this registry: the config is only read here
    from latentwire.config import Config, LossConfig, PromptConfig


class Task:
    """One training task; subclasses set `name` and override what differs."""

    name = ""
    answers_questions = False   # the target is an answer to a question (a self-teacher at k = 1 can read it)

    def problems(self, config: Config) -> list[str]:
        """Why `config` cannot run this task (checked when the config is read)."""
        return []

    def prompt(self, config: Config) -> PromptConfig:
        """The receiver prompt (instruction and anchor) of this task."""
        return config.prompt

    def target_length(self, loss: LossConfig) -> int:
        """Target tokens scored per example."""
        return loss.K

    def text_after(self, system, example: QAExample) -> str:
        """The text a receiver reads right after the latent (nothing, unless the task says otherwise)."""
        return ""

    def build_items(self, examples: list[QAExample], system, config: Config,
                    progress: bool = True) -> tuple[list[TrainItem], LoadReport]:
        """Training items of `examples` for `system` (a LatentWire model), and what was skipped."""
        raise NotImplementedError


class QATask(Task):
    """Latent of the prompt (or the context alone), target = the answer, optional KD from the text teacher."""

    name, answers_questions = "qa", True

    def text_after(self, system, example: QAExample) -> str:
        return system.text_after(example.question, example.context)   # the question, context-only mode

    def build_items(self, examples, system, config, progress=True):
        with contextlib.ExitStack() as alone:   # the text teacher is the frozen receiver, features off
            for name in system.receivers:
                alone.enter_context(system.features.plain(name))
            return build_items(examples, system.training_features, system.receivers, system.builders, config.loss,
                               progress=progress)


class SelectedQATask(QATask):
    """Question-aware QA, the reading of the latent_selected rows: the latent of the encoder.focus sentences (at
    least one) that encoder.focus_scorer ranks highest for the question, target = the answer. A question whose
    answer is not in those sentences is skipped: the latent holds nothing to answer it from."""

    name = "qa_selected"

    def build_items(self, examples, system, config, progress=True):
        scorer = SCORERS[config.encoder.focus_scorer]()
        report, kept = LoadReport(), []
        for example in examples:
            chosen = sender_choice(example.question, example.context, config.encoder.focus, scorer)
            answers = tuple(a for a in example.answers if a in chosen)
            if not answers:
                report.skip("answer not in the selected sentences", example.id)
                continue
            kept.append(replace(example, context=chosen, answers=answers))
        items, built = super().build_items(kept, system, config, progress)
        built.skipped.update(report.skipped)
        built.examples_of_skips = (report.examples_of_skips + built.examples_of_skips)[:20]
        return items, built


class SpanTask(Task):
    """Latent of a span of the context; the receiver produces a span (`spans` of them are read)."""

    instruction, anchor, spans = "", "", 1

    def problems(self, config):
        return ["loss.span_tokens must be >= 2"] if config.loss.span_tokens < 2 else []

    def prompt(self, config):
        return replace(config.prompt, instruction=self.instruction, anchor=self.anchor)

    def target_length(self, loss):
        return loss.span_tokens + 16   # another tokenizer may need a few more tokens for the same text

    def texts(self, ids: list[int], decode, span_tokens: int) -> tuple[str, str]:
        """(text the latent is made from, text the receiver must produce) from the context's ids."""
        raise NotImplementedError

    def span_texts(self, context: str, tokenizer, span_tokens: int) -> tuple[str, str] | None:
        """(source text, target text) of `context`, or None if it is too short."""
        ids = tokenizer(context, add_special_tokens=False)["input_ids"]
        if len(ids) < span_tokens * self.spans:
            return None
        return self.texts(ids, lambda part: tokenizer.decode(part).strip(), span_tokens)

    def build_items(self, examples, system, config, progress=True):
        report, items = LoadReport(), []
        first = next(iter(system.builders.values())).tokenizer
        length = self.target_length(config.loss)
        for example in examples:
            texts = self.span_texts(example.context, first, config.loss.span_tokens)
            if texts is None:
                report.skip("context shorter than the span", example.id)
                continue
            source, target = texts
            try:
                targets = {name: b.answer_ids("", target)[:length] for name, b in system.builders.items()}
            except AlignmentError as error:
                report.skip(f"span alignment: {str(error)[:80]}", example.id)
                continue
            items.append(TrainItem(example, system.featurize_text(source), targets))
            report.kept += 1
        return items, report


class ReconstructionTask(SpanTask):
    """The receiver regenerates the span the latent carries."""

    name, instruction, anchor = "reconstruction", "Repeat the text word for word.", "Text:"

    def texts(self, ids, decode, span_tokens):
        first = decode(ids[:span_tokens])
        return first, first


class ContinuationTask(SpanTask):
    """The latent carries one span; the receiver produces the span that follows it."""

    name, instruction, anchor, spans = "continuation", "Continue the text.", "Continuation:", 2

    def texts(self, ids, decode, span_tokens):
        return decode(ids[:span_tokens]), decode(ids[span_tokens:2 * span_tokens])


TASKS: dict[str, Task] = {task.name: task for task in (QATask(), SelectedQATask(), ReconstructionTask(),
                                                        ContinuationTask())}


def aux_task_problems(config: Config) -> list[str]:
    """Why loss.ks, loss.aux_objective / aux_share / aux_ks cannot work (the draws of task and k)."""
    loss = config.loss
    for name in ("ks", "aux_ks"):   # the k values a task's steps draw, among the reader's merges
        if not set(getattr(loss, name)) <= set(config.encoder.ks):
            return [f"loss.{name} must be values of encoder.ks {config.encoder.ks}, got {getattr(loss, name)}"]
    if not loss.aux_objective:
        return [f"loss.{name} needs loss.aux_objective, got {value}"
                for name, value in (("aux_share", loss.aux_share), ("aux_ks", loss.aux_ks)) if value]
    others = [name for name in TASKS if name != loss.objective]
    if loss.aux_objective not in others:
        return [f"loss.aux_objective must be '' or one of {', '.join(others)}, got {loss.aux_objective!r}"]
    if not 0 < loss.aux_share < 1:
        return [f"loss.aux_share must be in (0, 1) with loss.aux_objective, got {loss.aux_share}"]
    return TASKS[loss.aux_objective].problems(config)


def task_of(config: Config) -> Task:
    """The task `config.loss.objective` names."""
    return TASKS[config.loss.objective]


def span_texts(context: str, tokenizer, span_tokens: int, objective: str) -> tuple[str, str] | None:
    """(text the latent is made from, text the receiver must produce) of span task `objective`, or None
    if the context is too short."""
    return TASKS[objective].span_texts(context, tokenizer, span_tokens)
