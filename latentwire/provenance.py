"""Where a result came from: the commit of the code that produced it."""
from __future__ import annotations

import subprocess
from pathlib import Path


def code_commit() -> str:
    """The git short commit of the code that runs, with "+dirty" when tracked files are modified, or
    "unknown" outside a git checkout (or without git)."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head + ("+dirty" if dirty else "")) or "unknown"
