"""SQuAD v1.1 answer metrics: official normalisation, EM and F1 as the max over gold answers."""
from __future__ import annotations

import re
import string
from collections import Counter

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, collapse whitespace (official v1.1)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred_tokens), overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def best_em_f1(prediction: str, golds: tuple[str, ...] | list[str]) -> tuple[float, float]:
    """(EM, F1) of `prediction`, each the maximum over all gold answers."""
    return max(exact_match(prediction, g) for g in golds), max(f1(prediction, g) for g in golds)


def clean_prediction(text: str) -> str:
    """The generated answer up to its first line break, stripped."""
    return text.strip().split("\n")[0].strip()
