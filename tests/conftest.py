import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

from tiny import tiny_receiver  # noqa: E402


@pytest.fixture(scope="session", params=["llama", "qwen2"])
def receiver(request):
    return tiny_receiver(request.param)
