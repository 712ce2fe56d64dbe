"""An order-1 model on top of the unigram table: how often each shared token followed each other one in the
training split, fitted once (`latentwire fit-unigram --bigram`) and shipped beside the unigram table, so that
version 2 packets code each token given the one before it.

Coding (an escape model, PPM method C without exclusion): after token v, whose successors in the training
split were s_1..s_t with counts c_1..c_t (n in all), the next token is s_i with probability c_i / (n + t), or
an escape with probability t / (n + t) followed by the token under the unigram table. A segment (the context,
then the question) starts from a start context of its own. Successors seen fewer than `min_count` times are
left out (they escape). Sender and receiver build the same models from the same integer counts.
"""
from __future__ import annotations

import gzip
import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from tqdm import tqdm

from latentwire.atomic import atomic_write_bytes
from latentwire.errors import CodingError
from latentwire.wire.shared_vocab import SharedVocabulary

START = -1
"""The context of a segment's first token."""

DEFAULT_BIGRAM = "bigram_smollm2_qwen.json.gz"
"""The table shipped for the default receivers, in latentwire/data beside the unigram table."""


@dataclass
class BigramTable:
    """Per previous shared id (START for a segment's first token): its successors' ids and counts."""

    fingerprint: str
    successors: dict[int, tuple[list[int], list[int]]]
    provenance: dict = field(default_factory=dict)

    def digest(self) -> bytes:
        """sha256 of the table's contents (part of the packet's coder id)."""
        digest = hashlib.sha256(self.fingerprint.encode())
        for previous in sorted(self.successors):
            ids, counts = self.successors[previous]
            digest.update(np.asarray([previous, len(ids), *ids, *counts], dtype="<i8").tobytes())
        return digest.digest()

    def save(self, path: str | Path) -> None:
        """Write the table as gzipped JSON, atomically."""
        body = {"fingerprint": self.fingerprint, "provenance": self.provenance,
                "successors": {str(v): [ids, counts] for v, (ids, counts) in sorted(self.successors.items())}}
        atomic_write_bytes(Path(path), gzip.compress(json.dumps(body).encode("utf-8"), mtime=0))

    @classmethod
    def load(cls, path: str | Path | None = None) -> BigramTable:
        """A table written by `save`; the shipped default when path is None (CodingError if unreadable or
        inconsistent)."""
        where = str(path) if path else f"latentwire/data/{DEFAULT_BIGRAM}"
        try:
            raw = Path(path).read_bytes() if path else \
                resources.files("latentwire.data").joinpath(DEFAULT_BIGRAM).read_bytes()
            body = json.loads(gzip.decompress(raw))
            successors = {int(v): ([int(i) for i in ids], [int(c) for c in counts])
                          for v, (ids, counts) in body["successors"].items()}
            table = cls(str(body["fingerprint"]), successors, dict(body.get("provenance", {})))
        except (OSError, ValueError, KeyError, TypeError, EOFError) as error:
            raise CodingError(f"{where}: not a bigram table ({type(error).__name__})") from None
        if any(len(ids) != len(counts) or min(counts, default=1) < 1 for ids, counts in successors.values()):
            raise CodingError(f"{where}: every successor list needs as many positive counts as ids")
        return table


def fit_bigram(vocabulary: SharedVocabulary, texts: list[str], min_count: int = 2, provenance: dict | None = None,
               progress: bool = True) -> BigramTable:
    """Count which shared token follows which in `texts` (each a segment from START), keeping successors seen
    at least `min_count` times."""
    pairs: dict[int, Counter] = defaultdict(Counter)
    for text in tqdm(texts, desc="bigram", disable=not progress):
        previous = START
        for token in vocabulary.encode(text):
            pairs[previous][token] += 1
            previous = token
    successors = {}
    for previous, counter in pairs.items():
        kept = sorted((i, c) for i, c in counter.items() if c >= min_count)
        if kept:
            successors[previous] = ([i for i, _ in kept], [c for _, c in kept])
    return BigramTable(vocabulary.fingerprint, successors,
                       {**(provenance or {}), "texts": len(texts), "min_count": min_count})


def tokens_per_byte_bound(max_probability: float) -> int:
    """The most tokens one byte of range-coded payload can hold when no token is likelier than
    `max_probability` (with a 5% margin for the coder's quantised probabilities)."""
    bits = -np.log2(min(max_probability, 0.999))
    return int(np.floor(8 / bits * 1.05)) + 1


class BigramCoder:
    """Range coding of shared-id segments under a BigramTable with escapes to a unigram model."""

    def __init__(self, table: BigramTable, unigram_model, unigram_max_probability: float = 0.0):
        self.table, self.unigram = table, unigram_model
        self._models: dict[int, tuple[object, dict[int, int], list[int]]] = {}
        likeliest = max((max(counts) / (sum(counts) + len(counts)) for _, counts in table.successors.values()),
                        default=0.0)
        self.tokens_per_byte = tokens_per_byte_bound(max(likeliest, unigram_max_probability))
        """The most tokens an honest payload byte holds (a message claiming more is refused undecoded)."""

    def _context(self, previous: int):
        """(categorical model over successors + escape, id -> index, ids) after `previous`, or None."""
        if previous not in self._models:
            import constriction

            entry = self.table.successors.get(previous)
            if entry is None:
                self._models[previous] = None
            else:
                ids, counts = entry
                weights = np.asarray([*counts, len(ids)], dtype=np.float64)
                model = constriction.stream.model.Categorical(weights / weights.sum(), perfect=False)
                self._models[previous] = (model, {i: n for n, i in enumerate(ids)}, ids)
        return self._models[previous]

    def encode(self, segments: list[list[int]], starts: list[int] | None = None) -> bytes:
        """Segments of shared ids (segment i coded after starts[i]: the id before it, START by default) -> the
        range coder's 32-bit words as bytes."""
        import constriction

        encoder = constriction.stream.queue.RangeEncoder()
        for segment, start in zip(segments, starts or [START] * len(segments)):
            previous = start
            for token in segment:
                context = self._context(previous)
                if context is not None:
                    model, index, ids = context
                    encoder.encode(index.get(token, len(ids)), model)
                if context is None or token not in context[1]:
                    encoder.encode(token, self.unigram)
                previous = token
        return encoder.get_compressed().astype("<u4").tobytes()

    def decode(self, data: bytes, counts: list[int], name: str = "packet", starts: list[int] | None = None) -> list[int]:
        """The ids of `counts` segments (one list, in order; segment i after starts[i], as encode) from `data`
        (CodingError on malformed bytes)."""
        import constriction

        if len(data) % 4:
            raise CodingError(f"{name}: {len(data)} payload bytes, not whole 32-bit words")
        out: list[int] = []
        try:
            decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
            for count, start in zip(counts, starts or [START] * len(counts)):
                previous = start
                for _ in range(count):
                    context = self._context(previous)
                    token = -1
                    if context is not None:
                        model, _, ids = context
                        symbol = int(decoder.decode(model))
                        token = ids[symbol] if symbol < len(ids) else -1
                    if token < 0:
                        token = int(decoder.decode(self.unigram))
                    out.append(token)
                    previous = token
        except (ValueError, RuntimeError, AssertionError) as error:
            raise CodingError(f"{name}: the range coder refused the bytes ({error})") from None
        return out
