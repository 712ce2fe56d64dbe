"""Per-example sender work kept on disk, so that a killed benchmark does not code or prune again.

A `SenderCache` is the `peers` dict of an evaluation (MethodContext.resource): keys that are tuples of
str/int/float with a JSON value (lm_coded's round trip, LLMLingua's pruned context) are also appended to
a JSON-lines file and read back on the next run; other keys (the coder, the compressor objects) live in
memory only. A half-written last line (a kill) is dropped. The file is named by the `fingerprint` of what
the entries depend on (the sender model, its precision, the data), which is also its first line, so runs of
one sender share it and runs of another never see it. The sender times kept are those measured when the
work ran. A key not found is looked up again in what another process (bench/pareto.py --sender-only) has
appended to the file since, so one process may fill the cache while another reads it.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from latentwire.atomic import trim_partial_line

_SCALARS = (str, int, float)
LEGACY_NAME = "sender_cache.jsonl"
"""The file name before fingerprints named it (adopted when its first line is the same fingerprint)."""


def _persistent(key, value) -> bool:
    if not (isinstance(key, tuple) and all(isinstance(part, _SCALARS) for part in key)):
        return False
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def cache_path(folder: Path, fingerprint: dict) -> Path:
    """The cache file of `fingerprint` in `folder`."""
    digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:12]
    return Path(folder) / f"sender_cache-{digest}.jsonl"


def _first_record(path: Path) -> dict:
    with open(path) as handle:
        line = handle.readline()
    return json.loads(line) if line.strip() else {}


class SenderCache(dict):
    """A dict whose per-example entries persist in `folder`'s file for `fingerprint` (its first line, then JSON
    lines of {"key": [...], "value": ...})."""

    def __init__(self, folder: Path, fingerprint: dict):
        super().__init__()
        self.path, legacy = cache_path(folder, fingerprint), Path(folder) / LEGACY_NAME
        if not self.path.exists() and legacy.is_file() and _first_record(legacy).get("fingerprint") == fingerprint:
            legacy.rename(self.path)
        trim_partial_line(self.path)
        lines = self.path.read_text().splitlines() if self.path.is_file() else []
        if lines and json.loads(lines[0]).get("fingerprint") != fingerprint:
            raise ValueError(f"{self.path}: holds the work of another sender (its first line says which)")
        if not lines:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({"fingerprint": fingerprint}) + "\n")
        self._read = 0
        self._read_new()

    def _read_new(self) -> None:
        """Add the complete lines appended to the file since it was last read (the first is the fingerprint)."""
        with open(self.path, "rb") as handle:
            handle.seek(self._read)
            data = handle.read()
        end = data.rfind(b"\n") + 1               # a line still being written is read next time
        for line in data[:end].decode().splitlines():
            record = json.loads(line) if line.strip() else {}
            if "key" in record:
                super().__setitem__(tuple(record["key"]), record["value"])
        self._read += end

    def __contains__(self, key) -> bool:
        if not super().__contains__(key) and _persistent(key, None):
            self._read_new()
        return super().__contains__(key)

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        if _persistent(key, value):
            with open(self.path, "a") as handle:
                handle.write(json.dumps({"key": list(key), "value": value}) + "\n")
