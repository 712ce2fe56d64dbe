"""Crash-safe files: directories written atomically (staging dir, then rename), logs cut to whole lines."""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

STAGING_PREFIX = ".staging-"


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield an empty staging dir beside `target`; on success its files are fsynced and it becomes
    `target` by one rename. On any error (or a kill) `target` is untouched."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=target.parent))
    try:
        yield staging
        for path in staging.rglob("*"):
            if path.is_file():
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def trim_partial_line(path: Path) -> None:
    """Cut an append-only text log back to its last complete line (a kill may leave half a line)."""
    path = Path(path)
    if not path.is_file():
        return
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with open(path, "r+b") as handle:
            handle.truncate(end)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` by a fsynced temporary file beside it and one rename (never half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=STAGING_PREFIX, dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(staging, 0o644)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
