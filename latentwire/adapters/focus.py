"""Receiver-side focus for two-resolution reading: a lossless packet's context tokens that lie in the sentences
most similar to the question (the selection peers' rule, latentwire.sentences), marked so that the
reader gives each of them a position of its own (latentwire.adapters.token_merge.focus_layout).

The receiver knows the question and, from a version 2 packet, the context's exact tokens, so it marks them
itself: nothing about the focus crosses the wire. Training marks the same tokens from the same question.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import cache

from latentwire.sentences import SCORERS, split_sentences
from latentwire.wire.shared_vocab import SharedVocabulary


@cache
def focus_scorer(name: str) -> Callable[[str, list[str]], list[float]]:
    """The sentence scorer `name` of latentwire.sentences.SCORERS, built once per process."""
    if name not in SCORERS:
        raise ValueError(f"focus scorer must be one of {sorted(SCORERS)}, got {name!r}")
    return SCORERS[name]()


def sentence_byte_spans(text: str, sentences: list[str]) -> list[tuple[int, int]]:
    """[S] (start, end) UTF-8 byte offsets in `text` of its `sentences` (split_sentences(text)), in order."""
    spans, cursor = [], 0
    for sentence in sentences:
        start = text.index(sentence, cursor)
        cursor = start + len(sentence)
        spans.append((len(text[:start].encode("utf-8")), len(text[:cursor].encode("utf-8"))))
    return spans


def focus_marks(question: str, ids: list[int], vocabulary: SharedVocabulary, sentences: int = 1,
                scorer: str = "lexical") -> list[int]:
    """[T] 1 for each shared token of `ids` (a context) that overlaps one of the `sentences` context sentences
    the scorer ranks highest for `question` (ties: the earlier), else 0; every token when the context has at
    most `sentences` sentences. sentences = 0 marks none."""
    if sentences <= 0 or not ids:
        return [0] * len(ids)
    text = vocabulary.decode(ids)
    found = split_sentences(text)
    spans = sentence_byte_spans(text, found)
    if len(spans) > sentences:
        scores = focus_scorer(scorer)(question, found)
        spans = [spans[i] for i in sorted(range(len(spans)), key=lambda i: (-scores[i], i))[:sentences]]
    else:
        spans = [(0, len(text.encode("utf-8")))]
    marks, offset = [], 0
    for token in ids:
        end = offset + len(vocabulary.strings[token])   # a byte-level string: one character a byte
        marks.append(int(any(offset < b and a < end for a, b in spans)))
        offset = end
    return marks
