"""What `latentwire encode`, `answer` and `inspect` do, row by row (the CLI only opens the streams)."""
from __future__ import annotations

import base64
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from latentwire.atomic import atomic_write_bytes
from latentwire.errors import DataError, PacketError
from latentwire.service.jsonl import packet_field, row_id, text_field
from latentwire.system import LatentWire
from latentwire.wire.auth import TAG_SIZE, sign, verify
from latentwire.wire.packet import describe
from latentwire.wire.token_packet import TokenWire, is_version_2
from latentwire.wire.token_packet import describe as describe_v2

PACKET_SUFFIX = ".lwp"


def encode_rows(model: LatentWire, rows: Iterable[tuple[str, dict]], key: bytes | None = None,
                raw_dir: Path | None = None) -> Iterator[dict]:
    """Rows {id, context, question?} -> {id, packet (base64) or file, bytes, tag_bytes, sender_ms}; with
    `key` each packet carries its HMAC tag, with `raw_dir` it is written there as <id>.lwp."""
    seen: set[str] = set()
    for where, row in rows:
        ident = _unique_id(row, where, seen)
        context = text_field(row, "context", where, required=model.config.encoder.input == "context")
        question = text_field(row, "question", where, required=False)
        start = time.perf_counter()
        try:
            packet = model.encode(question, context)
        except ValueError as error:
            raise DataError(f"{where}: {error}") from None
        out = {"id": ident, "bytes": len(packet), "tag_bytes": TAG_SIZE if key else 0,
               "sender_ms": round(1000 * (time.perf_counter() - start), 2)}
        wire = sign(packet, key) if key else packet
        if raw_dir is not None:
            atomic_write_bytes(Path(raw_dir) / f"{ident}{PACKET_SUFFIX}", wire)
            out["file"] = f"{ident}{PACKET_SUFFIX}"
        else:
            out["packet"] = base64.b64encode(wire).decode()
        yield out


def read_questions(rows: Iterable[tuple[str, dict]]) -> dict[str, str]:
    """Rows {id, question} -> {id: question}; DataError on a repeated id."""
    questions: dict[str, str] = {}
    for where, row in rows:
        ident = _unique_id(row, where, questions)
        questions[ident] = text_field(row, "question", where)
    return questions


def answer_rows(model: LatentWire, rows: Iterable[tuple[str, dict]], questions: dict[str, str],
                receivers: list[str], key: bytes | None = None, base: Path | None = None,
                max_new_tokens: int = 16) -> Iterator[dict]:
    """Packet rows {id, packet | file} joined by id with `questions` -> {id, receiver, answer, receiver_ms}
    per receiver (receiver_ms: from the packet's bytes to the answer's text, at batch 1)."""
    unknown = [r for r in receivers if r not in model.receivers]
    if unknown:
        raise DataError(f"--receiver {unknown[0]!r} is not one of this model's receivers {sorted(model.receivers)}")
    seen: set[str] = set()
    for where, row in rows:
        ident = _unique_id(row, where, seen)
        packet = packet_field(row, where, base)
        question = questions.get(ident, "")
        if model.config.encoder.input == "context" and not question:
            raise DataError(f"{where}: no question with id {ident!r}: this model's packets carry only the context")
        for receiver in receivers:
            start = time.perf_counter()
            try:
                answer = model.answer(verify(packet, key) if key else packet, receiver, question, max_new_tokens)
            except PacketError as error:
                raise PacketError(f"{where}: {error}") from None
            yield {"id": ident, "receiver": receiver, "answer": answer,
                   "receiver_ms": round(1000 * (time.perf_counter() - start), 2)}


def inspect_packet(data: bytes, model: LatentWire | None = None, key: bytes | None = None) -> dict:
    """Header fields, sizes and CRC status of a packet of either version (after its HMAC tag is checked, with
    `key`); with a model, whether it can read the packet and what the packet says: the context tokens a
    latent names (version 1), the exact context and question (version 2, lossless)."""
    info = {"tag_bytes": 0}
    if key:
        data = verify(data, key)
        info = {"tag_bytes": TAG_SIZE, "tag": "ok"}
    if is_version_2(data):
        info = {**describe_v2(data), **info}
        if model is not None:
            tokenizers = [model.receivers[name].tokenizer for name in model.receiver_names]
            wire = TokenWire.for_tokenizers(tokenizers[0], tokenizers[1:])     # CodingError: not this vocabulary
            info["model_coder_id"] = wire.id.hex()
            info["made_by_this_model"] = info["coder_id"] == wire.id.hex()
            if not info["problem"] and info["made_by_this_model"]:
                info["context"], info["question_text"] = wire.decode(data)
        return info
    info = {**describe(data), **info}
    if model is not None:
        expected = model.checkpoint_id().hex()
        info["model_id"] = expected
        info["made_by_this_model"] = info["checkpoint_id"] == expected
        if not info["problem"] and info["made_by_this_model"]:
            info["named_text"] = model.named_text(data)
    return info


def _unique_id(row: dict, where: str, seen) -> str:
    ident = row_id(row, where)
    if ident in seen:
        raise DataError(f"{where}: id {ident!r} appears twice")
    if isinstance(seen, set):
        seen.add(ident)
    return ident
