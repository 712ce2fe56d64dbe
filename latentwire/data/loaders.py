"""Read QA examples from SQuAD JSON, the datasets hub, HotpotQA distractor JSON or generic JSONL.

Every loader returns `(examples, report)`: malformed rows are counted in the report and skipped,
never raised. A file that cannot be read at all raises `DataError` with a one-line message.
"""
from __future__ import annotations

import gzip
import json
import random
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable

from latentwire.errors import DataError
from latentwire.data.examples import LoadReport, QAExample, validate

VALIDATION_ARTICLES = 40
"""SQuAD split rule: the last 40 articles of a file are validation, the others train."""

SPLITS = ("train", "validation", "all")


def shipped_squad_path() -> Path:
    """Path of the SQuAD v1.1 slice inside the package (60 train + 40 validation articles)."""
    return Path(str(resources.files("latentwire.data").joinpath("squad_v1.1_train_slice.json.gz")))


def _read_json(path: Path) -> Any:
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise DataError(f"data file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, EOFError) as error:
        raise DataError(f"cannot parse {path} as JSON: {str(error).splitlines()[0]}") from None


def _select_articles(articles: list, split: str) -> list:
    if split not in SPLITS:
        raise DataError(f"split must be one of {SPLITS}, got {split!r}")
    if split == "all":
        return articles
    if len(articles) <= VALIDATION_ARTICLES:
        raise DataError(f"a file of {len(articles)} articles cannot be split by article; use split=all")
    return articles[:-VALIDATION_ARTICLES] if split == "train" else articles[-VALIDATION_ARTICLES:]


def load_squad(path: str | Path | None = None, split: str = "validation",
               max_context_chars: int = 4000) -> tuple[list[QAExample], LoadReport]:
    """SQuAD v1.1/v2.0 JSON (official layout, `.gz` allowed); empty path = the shipped slice."""
    path = Path(path) if path else shipped_squad_path()
    document = _read_json(path)
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise DataError(f"{path} is not in the SQuAD layout (a top-level 'data' list of articles)")
    report, examples = LoadReport(), []
    for a_index, article in enumerate(_select_articles(document["data"], split)):
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            report.skip("article without a paragraphs list", f"article{a_index}")
            continue
        title = str(article.get("title", ""))
        for p_index, paragraph in enumerate(article["paragraphs"]):
            if not isinstance(paragraph, dict) or not isinstance(paragraph.get("qas"), list):
                report.skip("paragraph without a qas list", f"{title}/{p_index}")
                continue
            for q_index, qa in enumerate(paragraph["qas"]):
                if not isinstance(qa, dict):
                    report.skip("question is not an object", f"{title}/{p_index}/{q_index}")
                    continue
                raw_answers = qa.get("answers")
                texts = [a.get("text") for a in raw_answers if isinstance(a, dict)] \
                    if isinstance(raw_answers, list) else raw_answers
                example = validate(qa.get("id", f"{title}/{p_index}/{q_index}"), qa.get("question"),
                                   paragraph.get("context"), texts, title, report, max_context_chars)
                if example is not None:
                    examples.append(example)
    return examples, report


def load_squad_hub(split: str = "validation", max_context_chars: int = 4000) -> tuple[list[QAExample], LoadReport]:
    """SQuAD through the Hugging Face `datasets` hub (needs `pip install datasets` and a connection)."""
    try:
        import datasets
    except ImportError:
        raise DataError("data.source=squad_hub needs the optional dependency: pip install datasets") from None
    hub_split = {"train": "train", "validation": "validation", "all": "train+validation"}[split]
    try:
        rows = datasets.load_dataset("rajpurkar/squad", split=hub_split)
    except Exception as error:  # the hub raises many kinds; one line is what the user needs
        raise DataError(f"cannot load SQuAD from the hub: {str(error).splitlines()[0]}") from None
    report = LoadReport()
    examples = [e for e in (validate(r.get("id"), r.get("question"), r.get("context"),
                                     (r.get("answers") or {}).get("text"), r.get("title", ""),
                                     report, max_context_chars) for r in rows) if e]
    return examples, report


def load_hotpotqa(path: str | Path, split: str = "all",
                  max_context_chars: int = 4000) -> tuple[list[QAExample], LoadReport]:
    """HotpotQA distractor JSON: the context joins the supporting paragraphs (capped in length)."""
    document = _read_json(Path(path))
    if not isinstance(document, list):
        raise DataError(f"{path} is not HotpotQA JSON (a top-level list of questions)")
    report, examples = LoadReport(), []
    for index, row in enumerate(document):
        row_id = row.get("_id", f"row{index}") if isinstance(row, dict) else f"row{index}"
        try:
            titles = {fact[0] for fact in row["supporting_facts"]}
            paragraphs = [f"{title}: {''.join(sentences)}" for title, sentences in row["context"]
                          if title in titles]
        except (KeyError, TypeError, ValueError, IndexError):
            report.skip("malformed supporting_facts or context", row_id)
            continue
        example = validate(row_id, row.get("question"), "\n".join(paragraphs), [row.get("answer")],
                           "", report, max_context_chars)
        if example is not None:
            examples.append(example)
    return examples, report


def load_jsonl(path: str | Path, split: str = "all",
               max_context_chars: int = 4000) -> tuple[list[QAExample], LoadReport]:
    """Generic JSONL, one `{id, question, context, answers}` object per line."""
    report, examples = LoadReport(), []
    try:
        with open(path, "rb") as handle:
            lines = handle.read().split(b"\n")
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror}") from None
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            report.skip("line is not valid UTF-8 JSON", f"line{number}")
            continue
        if not isinstance(row, dict):
            report.skip("line is not a JSON object", f"line{number}")
            continue
        answers = row.get("answers")
        example = validate(row.get("id", f"line{number}"), row.get("question"), row.get("context"),
                           [answers] if isinstance(answers, str) else answers, row.get("title", ""),
                           report, max_context_chars)
        if example is not None:
            examples.append(example)
    return examples, report


LOADERS: dict[str, Callable[..., tuple[list[QAExample], LoadReport]]] = {
    "squad": lambda path, split, cap: load_squad(path, split, cap),
    "squad_hub": lambda path, split, cap: load_squad_hub(split, cap),
    "hotpotqa": lambda path, split, cap: load_hotpotqa(path, split, cap),
    "jsonl": lambda path, split, cap: load_jsonl(path, split, cap),
}


def load_examples(source: str, path: str = "", split: str = "validation", n: int = 0, seed: int = 0,
                  max_context_chars: int = 4000) -> tuple[list[QAExample], LoadReport]:
    """Examples from `source` (see LOADERS); a seeded sample of `n` when 0 < n < len(split)."""
    if source not in LOADERS:
        raise DataError(f"data.source must be one of {sorted(LOADERS)}, got {source!r}")
    if source in ("hotpotqa", "jsonl") and not path:
        raise DataError(f"data.source={source} needs data.path")
    examples, report = LOADERS[source](path, split, max_context_chars)
    if not examples:
        raise DataError(f"no usable examples in {source} {path or '(shipped slice)'} split={split}: "
                        f"{report.as_dict()['skipped']}")
    if 0 < n < len(examples):
        examples = random.Random(seed).sample(examples, n)
    return examples, report


def iter_batches(items: list, size: int) -> Iterable[list]:
    """Consecutive slices of `items` of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
