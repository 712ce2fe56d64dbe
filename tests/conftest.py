import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

from tiny import save_tiny_pair, tiny_receiver  # noqa: E402


@pytest.fixture(scope="session", params=["llama", "qwen2"])
def receiver(request):
    return tiny_receiver(request.param)


@pytest.fixture(scope="module")
def pair():
    """Two tiny random receivers, a (llama, also the encoder's source model "tiny-src") and b (qwen2)."""
    a, b = tiny_receiver("llama"), tiny_receiver("qwen2", seed=1)
    a.name, b.name, a.source = "a", "b", "tiny-src"
    return {"a": a, "b": b}


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    """A tiny llama and qwen2 receiver saved as local model dirs, for runs in subprocesses; their paths."""
    return save_tiny_pair(tmp_path_factory.mktemp("tiny_models"))
