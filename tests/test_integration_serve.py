"""`latentwire serve` on the shipped default weights, started with uvicorn in a subprocess and asked over real
HTTP (select with -m integration)."""
import base64
import socket
import subprocess
import sys
import time

import httpx
import pytest

from latentwire.data.loaders import load_examples
from latentwire.weights import WEIGHTS_DIR, verify_card

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "latentwire.cli", "serve", "--port", str(port),
                                "serve.max_body_bytes=8192"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 240
    while time.time() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("server did not come up in 240 s")
    yield url
    process.terminate()
    process.wait(30)
    log = process.stderr.read().decode()
    assert '"route": "/v1/answer", "method": "POST", "status": 200' in log   # one structured line a request


def test_encode_and_answer_over_http_with_the_shipped_weights(server):
    card = verify_card(WEIGHTS_DIR / "default")
    info = httpx.get(f"{server}/v1/info").json()
    assert info["model_id"] == card["packet"]["checkpoint_id"] and set(info["receivers"]) == {"smollm2", "qwen"}
    (example,), _ = load_examples("squad", n=1, seed=0)
    encoded = httpx.post(f"{server}/v1/encode", json={"context": example.context}, timeout=60).json()
    assert encoded["bytes"] == card["packet"]["bytes"] == len(base64.b64decode(encoded["packet"]))
    for receiver in ("smollm2", "qwen"):
        answer = httpx.post(f"{server}/v1/answer", json={"packet": encoded["packet"], "question": example.question,
                                                         "receiver": receiver}, timeout=60)
        assert answer.status_code == 200 and answer.json()["answer"].strip() and answer.json()["receiver_ms"] > 0
    too_big = httpx.post(f"{server}/v1/encode", json={"context": "x" * 9000}, timeout=10)
    assert too_big.status_code == 413
