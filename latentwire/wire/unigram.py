"""A unigram table over the shared vocabulary: how often each shared token occurs in the training split's
contexts and questions, fitted once (`latentwire fit-unigram`) and shipped in the package, so that sender and
receiver range-code shared ids under the same probabilities (latentwire.wire.codings, coding `unigram`).
"""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from tqdm import tqdm

from latentwire.atomic import atomic_write_bytes
from latentwire.errors import CodingError
from latentwire.wire.shared_vocab import SharedVocabulary

SMOOTHING = 0.5
"""Added to every count, so a token the training split never had still codes (at about 20 bits)."""

DEFAULT_TABLE = "unigram_smollm2_qwen.json.gz"
"""The table shipped for the default receivers (SmolLM2-135M and Qwen2.5-Coder-0.5B), in latentwire/data."""


@dataclass
class UnigramTable:
    """Counts [n] of each shared token id, for the shared vocabulary with this fingerprint."""

    fingerprint: str
    counts: list[int]
    provenance: dict = field(default_factory=dict)

    def probabilities(self) -> np.ndarray:
        """[n] float64 probabilities: smoothed counts, normalised."""
        counts = np.asarray(self.counts, dtype=np.float64) + SMOOTHING
        return counts / counts.sum()

    def model(self):
        """The constriction categorical model of these probabilities (sender and receiver build the same)."""
        import constriction

        return constriction.stream.model.Categorical(self.probabilities(), perfect=False)

    def bits_per_token(self) -> float:
        """Mean code length in bits of a training-split token (the table's own entropy)."""
        p, counts = self.probabilities(), np.asarray(self.counts, dtype=np.float64)
        return float(-(counts * np.log2(p)).sum() / max(counts.sum(), 1))

    def save(self, path: str | Path) -> None:
        """Write the table as gzipped JSON, atomically."""
        body = {"fingerprint": self.fingerprint, "counts": self.counts, "provenance": self.provenance}
        atomic_write_bytes(Path(path), gzip.compress(json.dumps(body).encode("utf-8"), mtime=0))

    @classmethod
    def load(cls, path: str | Path | None = None) -> UnigramTable:
        """A table written by `save`; the shipped default when path is None (CodingError if unreadable)."""
        where = str(path) if path else f"latentwire/data/{DEFAULT_TABLE}"
        try:
            raw = Path(path).read_bytes() if path else \
                resources.files("latentwire.data").joinpath(DEFAULT_TABLE).read_bytes()
            body = json.loads(gzip.decompress(raw))
            table = cls(str(body["fingerprint"]), [int(c) for c in body["counts"]], dict(body.get("provenance", {})))
        except (OSError, ValueError, KeyError, TypeError, EOFError) as error:
            raise CodingError(f"{where}: not a unigram table ({type(error).__name__})") from None
        if not table.counts or min(table.counts) < 0:
            raise CodingError(f"{where}: counts must be a non-empty list of non-negative integers")
        return table


def fit_unigram(vocabulary: SharedVocabulary, texts: list[str], provenance: dict | None = None,
                progress: bool = True) -> UnigramTable:
    """Count the shared tokens of `texts` (each text once, as the sender would write it)."""
    counts = np.zeros(len(vocabulary), dtype=np.int64)
    for text in tqdm(texts, desc="unigram", disable=not progress):
        np.add.at(counts, vocabulary.encode(text), 1)
    return UnigramTable(vocabulary.fingerprint, counts.tolist(),
                        {**(provenance or {}), "texts": len(texts), "tokens": int(counts.sum())})


def training_texts(config) -> tuple[SharedVocabulary, list[str], dict]:
    """The shared vocabulary of `config`'s receivers, the texts the coding tables are fitted on (every context of
    its data once, every question) and their provenance."""
    from latentwire.data.loaders import load_examples
    from latentwire.llm.loader import load_receiver

    data = config.data
    examples, _ = load_examples(data.source, data.path, data.split, data.n, data.seed, data.max_context_chars)
    tokenizers = [load_receiver(r.model, r.name, "float32").tokenizer for r in config.receivers]
    vocabulary = SharedVocabulary.from_tokenizers(tokenizers[0], tokenizers[1:])
    texts = list(dict.fromkeys(e.context for e in examples)) + [e.question for e in examples]
    provenance = {"source": data.source, "path": Path(data.path).name or "(shipped slice)", "split": data.split,
                  "receivers": [r.model for r in config.receivers]}
    return vocabulary, texts, provenance


def shipped_path(name: str) -> Path:
    """Where the package keeps its shipped table `name` (latentwire/data)."""
    from importlib.util import find_spec

    return Path(find_spec("latentwire.data").submodule_search_locations[0]) / name


def fit_for_config(config, out: str = "", progress: bool = True) -> tuple[UnigramTable, Path]:
    """Fit the table of `config`'s receivers on its data (training_texts) and write it to `out` (default: the
    package's shipped table); (the table, where it went)."""
    vocabulary, texts, provenance = training_texts(config)
    table = fit_unigram(vocabulary, texts, provenance, progress)
    target = Path(out) if out else shipped_path(DEFAULT_TABLE)
    table.save(target)
    return table, target
