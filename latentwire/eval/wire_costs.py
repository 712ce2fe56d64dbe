"""What each prompt cost on the wire and at the receiver: bytes of the sender's message in every coding (with
each coding's decoding time, round trip checked), the sender's time, and the receiver's time to its first
answer token."""
from __future__ import annotations

import statistics
import time

from latentwire.config import Config
from latentwire.errors import CodingError
from latentwire.eval.prompt_input import PromptInput
from latentwire.llm.loader import Receiver
from latentwire.wire.bigram import BigramTable
from latentwire.wire.codings import CODING_NAMES, Coding, text_codings
from latentwire.wire.shared_vocab import SharedVocabulary
from latentwire.wire.unigram import UnigramTable


def build_codings(config: Config, receivers: dict[str, Receiver]) -> tuple[dict[str, Coding], list[str]]:
    """The codings of config.eval.codings over the receivers' shared vocabulary (the first receiver's tokenizer
    segments) and the unigram table; and a note for each coding that cannot apply to these receivers. A table
    named in eval.unigram must load and fit the receivers (CodingError); the shipped one is skipped if not."""
    names, notes = list(config.eval.codings), []
    table = UnigramTable.load(config.eval.unigram or None) if {"unigram", "bigram"} & set(names) else None
    vocabulary = None
    if {"ids", "unigram", "bigram"} & set(names):
        tokenizers = [receivers[spec.name].tokenizer for spec in config.receivers]
        try:
            vocabulary = SharedVocabulary.from_tokenizers(tokenizers[0], tokenizers[1:])
        except CodingError as error:
            notes.append(f"ids, unigram, bigram: {error}")
            names, table = [n for n in names if n not in ("ids", "unigram", "bigram")], None
    if table is not None and table.fingerprint != vocabulary.fingerprint:
        if config.eval.unigram:
            raise CodingError(f"eval.unigram={config.eval.unigram}: fitted for other receivers' shared vocabulary")
        notes.append("unigram, bigram: the shipped tables are for the default receivers (latentwire fit-unigram "
                     "fits them)")
        names, table = [n for n in names if n not in ("unigram", "bigram")], None
    bigram = BigramTable.load(config.eval.bigram or None) if "bigram" in names and table is not None else None
    if bigram is not None and bigram.fingerprint != vocabulary.fingerprint:
        if config.eval.bigram:
            raise CodingError(f"eval.bigram={config.eval.bigram}: fitted for other receivers' shared vocabulary")
        notes.append("bigram: the shipped table is for the default receivers (latentwire fit-unigram fits one)")
        names, bigram = [n for n in names if n != "bigram"], None
    built = text_codings(vocabulary, table, bigram)
    return {name: built[name] for name in names}, notes


def message_costs(prompt: PromptInput, codings: dict[str, Coding]) -> dict:
    """{bytes_<coding>, decode_ms_<coding>} of `prompt`'s message in each coding (the plain part counted as its
    UTF-8 bytes), plus the codings the method ran itself; CodingError if a round trip is not exact."""
    costs = {}
    if prompt.message is not None:
        plain = len(prompt.message.plain.encode("utf-8"))
        for name, coding in codings.items():
            coded, seconds = b"", 0.0
            if prompt.message.coded:
                coded = coding.encode(prompt.message.coded)
                started = time.perf_counter()
                back = coding.decode(coded)
                seconds = time.perf_counter() - started
                if back != prompt.message.coded:
                    raise CodingError(f"{name}: the round trip changed the text")
            costs[f"bytes_{name}"], costs[f"decode_ms_{name}"] = len(coded) + plain, 1000 * seconds
    for name, size in prompt.coded_bytes.items():
        costs[f"bytes_{name}"] = size
        costs[f"decode_ms_{name}"] = 1000 * prompt.decode_seconds.get(name, 0.0)
    return costs


def cost_columns(records: list[dict], prompts: list[PromptInput], coding: str) -> dict:
    """Row columns: mean bytes_<coding> and median decode_ms_<coding> for every coding the records have,
    wire_bytes (in the method's own `coding`; token packets in the context-only regime also
    wire_bytes_coded_question: the question coded by the packet's coder instead of UTF-8), reference_bytes (the full question + context's UTF-8 bytes,
    what compression is against), compression (reference_bytes / wire_bytes: what the method delivered),
    sender_ms (median) and `exact` (share of exact round trips)."""
    row = {}
    for name in CODING_NAMES:
        sizes = [r[f"bytes_{name}"] for r in records if f"bytes_{name}" in r]
        if sizes:
            row[f"bytes_{name}"] = sum(sizes) / len(sizes)
            row[f"decode_ms_{name}"] = statistics.median(r[f"decode_ms_{name}"] for r in records)
    latent = [p.wire_bytes for p in prompts if p.wire_bytes is not None]
    row["wire_bytes"] = sum(latent) / len(latent) if latent else row.get(f"bytes_{coding}")
    coded = [p.wire_bytes_coded_question for p in prompts if p.wire_bytes_coded_question is not None]
    if coded:                       # a token packet's figure with the question coded by its coder too
        row["wire_bytes_coded_question"] = sum(coded) / len(coded)
    row["reference_bytes"] = sum(p.text_bytes for p in prompts) / len(prompts) if prompts else None
    if row["reference_bytes"] and row["wire_bytes"]:   # the compression the method delivered, in bytes
        row["compression"] = row["reference_bytes"] / row["wire_bytes"]
    row["sender_ms"] = 1000 * statistics.median(p.sender_seconds for p in prompts) if prompts else None
    row["exact"] = sum(p.exact for p in prompts) / len(prompts) if prompts else None
    return row
