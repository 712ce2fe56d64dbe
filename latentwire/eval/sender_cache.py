"""Per-example sender work kept on disk, so that a killed benchmark does not code or prune again.

A `SenderCache` is the `peers` dict of an evaluation (MethodContext.resource): keys that are tuples of
str/int/float with a JSON value (lm_coded's round trip, LLMLingua's pruned context) are also appended to
a JSON-lines file and read back on the next run; other keys (the coder, the compressor objects) live in
memory only. A half-written last line (a kill) is dropped. The file's first line is the `fingerprint` of what
the entries depend on (the sender model, its precision, the data); a file of another fingerprint is moved
aside (never deleted) and a new one started. The sender times kept are those measured when the work ran.
"""
from __future__ import annotations

import json
from pathlib import Path

from latentwire.atomic import trim_partial_line

_SCALARS = (str, int, float)


def _persistent(key, value) -> bool:
    if not (isinstance(key, tuple) and all(isinstance(part, _SCALARS) for part in key)):
        return False
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


class SenderCache(dict):
    """A dict whose per-example entries persist in `path` (a fingerprint line, then JSON lines of
    {"key": [...], "value": ...})."""

    def __init__(self, path: Path, fingerprint: dict):
        super().__init__()
        self.path = Path(path)
        trim_partial_line(self.path)
        lines = self.path.read_text().splitlines() if self.path.is_file() else []
        head = json.loads(lines[0]) if lines else {}
        if lines and head.get("fingerprint") != fingerprint:          # another sender's work: kept aside
            aside = self.path.with_name(f"{self.path.stem}.stale-{len(list(self.path.parent.glob('*.stale-*')))}"
                                        f"{self.path.suffix}")
            self.path.rename(aside)
            lines = []
        if not lines:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({"fingerprint": fingerprint}) + "\n")
        for line in lines[1:]:
            if line.strip():
                record = json.loads(line)
                super().__setitem__(tuple(record["key"]), record["value"])

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        if _persistent(key, value):
            with open(self.path, "a") as handle:
                handle.write(json.dumps({"key": list(key), "value": value}) + "\n")
