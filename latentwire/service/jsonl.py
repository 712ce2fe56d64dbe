"""JSON-lines in and out, with one-line errors that name the file and line of a bad row."""
from __future__ import annotations

import base64
import binascii
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from latentwire.data.examples import MAX_FIELD_CHARS
from latentwire.errors import DataError

ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,128}")
MAX_LINE_BYTES = 4 * MAX_FIELD_CHARS + 65536


def open_input(path: str) -> IO[str]:
    """The text stream of `path` ("-" for stdin); DataError naming the file when it cannot be opened."""
    if path == "-":
        return sys.stdin
    try:
        return open(path, encoding="utf-8")
    except OSError as error:
        raise DataError(f"{path}: {error.strerror or error}") from None


def read_rows(stream: IO[str], name: str) -> Iterator[tuple[str, dict]]:
    """Yield (where, row) for every non-blank line of a JSONL stream ("file:line", the parsed object);
    DataError on a line that is not a JSON object or is over MAX_LINE_BYTES."""
    try:
        for number, line in enumerate(stream, 1):
            where = f"{name}:{number}"
            if len(line) > MAX_LINE_BYTES:
                raise DataError(f"{where}: line of {len(line)} characters is over the limit of {MAX_LINE_BYTES}")
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{where}: not JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
            yield where, row
    except UnicodeDecodeError:
        raise DataError(f"{name}: not UTF-8 text") from None


def row_id(row: dict, where: str) -> str:
    """The row's `id` as a string of 1-128 letters, digits, '.', '_' or '-' (safe as a file name)."""
    value = row.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise DataError(f"{where}: field 'id' must be 1-128 letters, digits, '.', '_' or '-', got {value!r:.60}")
    return value


def text_value(fields: dict, field: str, required: bool = True) -> str:
    """A string field of at most MAX_FIELD_CHARS characters ("" when absent and not required); ValueError
    naming the field otherwise (the JSONL commands and the HTTP routes both check fields with it)."""
    value = fields.get(field, None if required else "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValueError(f"field {field!r} must be a non-empty string")
    if len(value) > MAX_FIELD_CHARS:
        raise ValueError(f"field {field!r} has {len(value)} characters, over the limit of {MAX_FIELD_CHARS}")
    return value


def text_field(row: dict, field: str, where: str, required: bool = True) -> str:
    """`text_value` of a JSONL row, its error a DataError naming the file and line."""
    try:
        return text_value(row, field, required)
    except ValueError as error:
        raise DataError(f"{where}: {error}") from None


def decode_base64(value) -> bytes:
    """The bytes of a base64 string; TypeError or ValueError naming the field 'packet' for anything else."""
    if not isinstance(value, str):
        raise TypeError(f"field 'packet' must be base64 text, got {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise ValueError("field 'packet' must be base64 text") from None


def packet_field(row: dict, where: str, base: Path | None = None) -> bytes:
    """The packet bytes of a row: base64 in `packet`, or the raw file named by `file` (relative to `base`)."""
    if "packet" in row:
        try:
            return decode_base64(row["packet"])
        except (TypeError, ValueError) as error:
            raise DataError(f"{where}: {error}") from None
    if isinstance(row.get("file"), str):
        path = (base or Path(".")) / row["file"]
        try:
            return path.read_bytes()
        except OSError as error:
            raise DataError(f"{where}: packet file {path}: {error.strerror or error}") from None
    raise DataError(f"{where}: a row needs 'packet' (base64) or 'file' (a raw packet file)")


def write_row(stream: IO[str], row: dict) -> None:
    """One JSON object as one line, flushed (so a pipe's reader sees it at once)."""
    stream.write(json.dumps(row, ensure_ascii=False) + "\n")
    stream.flush()
