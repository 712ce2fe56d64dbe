"""The QA example every loader produces, and the record of rows that were skipped."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class QAExample:
    """One question over one context, with every gold answer text."""

    id: str
    question: str
    context: str
    answers: tuple[str, ...]
    title: str = ""


@dataclass
class LoadReport:
    """What a loader kept and what it skipped, with the reason for each skip."""

    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples_of_skips: list[str] = field(default_factory=list)

    def skip(self, reason: str, row_id: str) -> None:
        self.skipped[reason] += 1
        if len(self.examples_of_skips) < 20:
            self.examples_of_skips.append(f"{row_id}: {reason}")

    def as_dict(self) -> dict:
        return {"kept": self.kept, "skipped": dict(self.skipped), "skipped_total": sum(self.skipped.values()),
                "first_skips": list(self.examples_of_skips)}


MAX_FIELD_CHARS = 100_000


def clean_text(value: object) -> str | None:
    """Text with surrounding whitespace stripped, or None if `value` is not usable text."""
    if not isinstance(value, str):
        return None
    if "\ufffd" in value:       # replacement char: the bytes were not valid UTF-8
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return None
    return value.strip()


def validate(row_id: str, question: object, context: object, answers: object, title: str,
             report: LoadReport, max_context_chars: int) -> QAExample | None:
    """A QAExample from raw fields, or None (with the reason counted in `report`)."""
    q, c = clean_text(question), clean_text(context)
    if q is None or c is None:
        report.skip("invalid text (not a string or broken encoding)", row_id)
        return None
    if not q:
        report.skip("empty question", row_id)
        return None
    if not c:
        report.skip("empty context", row_id)
        return None
    if len(q) > MAX_FIELD_CHARS or len(c) > MAX_FIELD_CHARS:
        report.skip(f"absurd length (over {MAX_FIELD_CHARS} characters)", row_id)
        return None
    if not isinstance(answers, (list, tuple)):
        report.skip("answers is not a list", row_id)
        return None
    golds = tuple(a for a in (clean_text(x) for x in answers) if a)
    if not golds:
        report.skip("no answer", row_id)
        return None
    if len(c) > max_context_chars:
        cut = c[:max_context_chars]
        c = cut[:cut.rfind(" ")] if " " in cut else cut
    report.kept += 1
    return QAExample(id=str(row_id), question=q, context=c, answers=golds, title=title)
