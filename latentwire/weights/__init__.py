"""Weights that ship inside the package, addressed by name (`checkpoint=default`, `from_pretrained("default")`),
and the model card that lists every file of a weights directory with its sha256.

    latentwire/weights/<name>/{config.json, model.safetensors, state.json, model_card.json}
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from latentwire.errors import CheckpointError

WEIGHTS_DIR = Path(__file__).parent
DEFAULT = "default"
CARD = "model_card.json"
WEIGHT_FILES = ("config.json", "model.safetensors", "state.json")


def shipped_names() -> list[str]:
    """Names of the weights directories inside the package."""
    return sorted(p.name for p in WEIGHTS_DIR.iterdir() if (p / "state.json").is_file())


def named_path(path: str | Path) -> Path:
    """`path` itself, or the shipped directory when `path` is a shipped name ("default") that is not a
    directory here."""
    text = str(path)
    if text in shipped_names() and not Path(text).is_dir():
        return WEIGHTS_DIR / text
    return Path(path)


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(folder: Path) -> dict[str, str]:
    """{file name: sha256} of the weight files of `folder`."""
    return {name: sha256_of(folder / name) for name in WEIGHT_FILES if (folder / name).is_file()}


def verify_card(folder: Path) -> dict | None:
    """The model card of `folder` (None when it has none), after checking every file it lists against its
    sha256; CheckpointError names the first file that differs."""
    path = Path(folder) / CARD
    if not path.is_file():
        return None
    try:
        card = json.loads(path.read_text())
        listed = dict(card["files"])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"corrupt model card {path}: {str(error).splitlines()[0]}") from None
    for name, expected in sorted(listed.items()):
        if not (Path(folder) / name).is_file():
            raise CheckpointError(f"{path} lists {name}, which is missing")
        if sha256_of(Path(folder) / name) != expected:
            raise CheckpointError(f"{Path(folder) / name} does not match its sha256 in {path} (changed or corrupt)")
    return card


def write_card(folder: Path, card: dict) -> Path:
    """Write `folder`/model_card.json: `card` plus the sha256 of every weight file now in `folder`."""
    path = Path(folder) / CARD
    path.write_text(json.dumps({**card, "files": file_hashes(Path(folder))}, indent=2) + "\n")
    return path
