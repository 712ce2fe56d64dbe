"""The wire across process boundaries on tiny receivers: save/from_pretrained, the encode/answer/inspect CLI,
packet authentication, and the HTTP app through the ASGI test client (every route, every error code)."""
import base64
import copy
import io
import json
import threading

import pytest
import torch
from starlette.testclient import TestClient

from latentwire.cli import main
from latentwire.config import ServeConfig, load_config
from latentwire.errors import CheckpointError, PacketError
from latentwire.prompt import split_content
from latentwire.service.app import create_app
from latentwire.system import LatentWire, build_system
from latentwire.weights import DEFAULT, WEIGHTS_DIR, named_path, verify_card
from latentwire.wire.auth import TAG_SIZE, sign, verify

KEY = b"k" * 32
CONTEXT = "The Normans were in Normandy in the 10th and 11th centuries. Paris is the capital of France."


@pytest.fixture(scope="module")
def weights(tiny_dirs, tmp_path_factory):
    """A tiny context-only token-code model (untrained) saved with save_pretrained; its directory."""
    a, b = tiny_dirs
    config = load_config(None, [f"receivers=[{{name: a, model: {a}}}, {{name: b, model: {b}}}]",
                                "encoder.kind=token_code", "encoder.select=prefix", "encoder.M=4", "encoder.d_z=8",
                                "encoder.tokens_per_slot=2", f"encoder.source_model={a}", "encoder.source_layer=1",
                                "encoder.input=context", "wire.bits=4", "dtype=float32"])
    folder = tmp_path_factory.mktemp("weights") / "tiny"
    build_system(config).save_pretrained(folder, card={"name": "tiny"})
    return folder


@pytest.fixture(scope="module")
def model(weights):
    return LatentWire.from_pretrained(weights)


def test_save_and_from_pretrained_keep_the_model_and_its_card_lists_every_file(weights, model, tmp_path):
    card = json.loads((weights / "model_card.json").read_text())
    assert card["name"] == "tiny" and set(card["files"]) == {"config.json", "model.safetensors", "state.json"}
    packet = model.encode("", CONTEXT)
    again = LatentWire.from_pretrained(model.save_pretrained(tmp_path / "copy"))
    assert again.checkpoint_id() == model.checkpoint_id()
    assert torch.equal(again.decode(packet), model.decode(packet))
    assert again.answer(packet, "a", "What is the capital?") == model.answer(packet, "a", "What is the capital?")
    with pytest.raises(CheckpointError, match="safetensors only"):
        LatentWire.from_pretrained(weights, use_safetensors=False)


def test_a_changed_weight_file_is_refused_by_its_sha256(weights, tmp_path):
    import shutil
    copy = tmp_path / "w"
    shutil.copytree(weights, copy)
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors does not match its sha256"):
        LatentWire.from_pretrained(copy)


def test_default_names_the_shipped_weights_and_their_card_matches_them():
    assert named_path(DEFAULT) == WEIGHTS_DIR / "default"
    card = verify_card(WEIGHTS_DIR / "default")
    assert card["packet"]["bytes"] == 110 and (WEIGHTS_DIR / "default" / "model.safetensors").stat().st_size < 20e6
    from pathlib import Path

    from latentwire.weights import sha256_of
    table = card["coder_tables"]["unigram"]
    assert sha256_of(Path(__file__).parents[1] / table["path"]) == table["sha256"]     # the shipped table itself


def test_answer_many_batches_what_answer_gives_one_by_one(model):
    contexts = [CONTEXT, "Paris is the capital of France.", "Who wrote it? 1999 2001 42"]
    packets = [model.encode("", c) for c in contexts]
    questions = ["What is the capital?", "Who wrote it?", "How many people live there?"]
    single = [model.answer(p, "b", q) for p, q in zip(packets, questions)]
    assert model.answer_many(packets, "b", questions) == single


def test_named_text_reads_back_the_context_tokens_a_token_code_packet_names(model):
    named = model.named_text(model.encode("", CONTEXT))
    carried = split_content("", CONTEXT, "context")[0]       # "Context: ..."
    assert len(named) > 10 and carried.startswith(named)     # prefix selection: the first M*k tokens, in order


def test_hmac_tag_round_trip_and_refusals():
    packet = b"LWIR" + bytes(50)
    signed = sign(packet, KEY)
    assert len(signed) == len(packet) + TAG_SIZE and verify(signed, KEY) == packet
    for bad in (packet, signed[:-1] + bytes([signed[-1] ^ 1]), sign(packet, b"x" * 32), b"short"):
        with pytest.raises(PacketError, match="authenticat"):
            verify(bad, KEY)


# -- CLI ------------------------------------------------------------------------------------------------------

def _run(capsys, monkeypatch, args, stdin=""):
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(args)
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{") and line.endswith("}")]
    return code, rows, out, err


def test_encode_then_answer_joins_questions_by_id(weights, tmp_path, capsys, monkeypatch):
    contexts = "".join(json.dumps({"id": f"q{i}", "context": CONTEXT}) + "\n" for i in range(2))
    code, packets, _, _ = _run(capsys, monkeypatch, ["encode", "--model", str(weights)], contexts)
    assert code == 0 and [p["id"] for p in packets] == ["q0", "q1"] and packets[0]["bytes"] == len(
        base64.b64decode(packets[0]["packet"]))
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"id": f"q{i}", "question": "What is the capital?"}) + "\n"
                                 for i in (1, 0)))
    code, answers, _, _ = _run(capsys, monkeypatch, ["answer", "--model", str(weights), "--questions",
                                                     str(questions)], "".join(json.dumps(p) + "\n" for p in packets))
    assert code == 0 and [(a["id"], a["receiver"]) for a in answers] == [("q0", "a"), ("q0", "b"), ("q1", "a"),
                                                                         ("q1", "b")]
    assert all(isinstance(a["answer"], str) and a["receiver_ms"] > 0 for a in answers)


def test_raw_files_hmac_and_inspect(weights, tmp_path, capsys, monkeypatch):
    key = tmp_path / "key"
    key.write_bytes(KEY)
    raw = tmp_path / "raw"
    code, rows, _, _ = _run(capsys, monkeypatch, ["encode", "--model", str(weights), "--raw-dir", str(raw),
                                                  "--key-file", str(key)], json.dumps({"id": "x", "context": CONTEXT}))
    assert code == 0 and rows[0]["file"] == "x.lwp" and rows[0]["tag_bytes"] == TAG_SIZE
    path = raw / "x.lwp"
    assert path.stat().st_size == rows[0]["bytes"] + TAG_SIZE
    code, _, out, _ = _run(capsys, monkeypatch, ["inspect", str(path), "--model", str(weights), "--key-file",
                                                 str(key)])
    info = json.loads(out)
    assert code == 0 and info["crc"] == "ok" and info["made_by_this_model"] and info["tag"] == "ok"
    assert info["total_bytes"] == rows[0]["bytes"] and "Normans" in info["named_text"]
    packet = bytearray(path.read_bytes()[:-TAG_SIZE])
    packet[30] ^= 4
    (tmp_path / "flipped").write_bytes(bytes(packet))
    code, _, out, _ = _run(capsys, monkeypatch, ["inspect", str(tmp_path / "flipped")])
    assert code == 2 and json.loads(out)["crc"] == "mismatch"
    code, _, _, err = _run(capsys, monkeypatch, ["inspect", str(tmp_path / "flipped"), "--key-file", str(key)])
    assert code == 2 and "authentication failed" in err


@pytest.mark.parametrize("args, stdin, message", [
    (["encode"], "{not json\n", "-:1: not JSON"),
    (["encode"], '{"context": "x"}\n', "-:1: field 'id' must be"),
    (["encode"], '{"id": "a/b", "context": "x"}\n', "field 'id' must be"),
    (["encode"], '{"id": 1, "context": "Paris"}\n{"id": "1", "context": "Paris"}\n', "-:2: id '1' appears twice"),
    (["encode"], '{"id": 1, "context": ""}\n', "field 'context' must be a non-empty string"),
    (["encode"], '[1, 2]\n', "expected a JSON object"),
    (["answer"], '{"id": 1, "packet": "!!"}\n', "field 'packet' must be base64"),
    (["answer"], '{"id": 1, "packet": "TFdJUg=="}\n', "no question with id '1'"),
    (["answer", "--receiver", "zz"], '', "--receiver 'zz' is not one of"),
    (["inspect", "/nonexistent/p.lwp"], '', "/nonexistent/p.lwp"),
])
def test_bad_cli_input_is_one_line_and_exit_code_2(weights, capsys, monkeypatch, args, stdin, message):
    extra = ["--model", str(weights)] if args[0] != "inspect" else []
    code, _, _, err = _run(capsys, monkeypatch, [*args, *extra], stdin)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_packet_of_another_model_is_refused_in_one_line(weights, model, tmp_path, capsys, monkeypatch):
    packet = base64.b64encode(_other_model(model).encode("", CONTEXT)).decode()
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"id": "1", "question": "Who?"}\n')
    code, _, _, err = _run(capsys, monkeypatch, ["answer", "--model", str(weights), "--questions", str(questions)],
                           json.dumps({"id": "1", "packet": packet}))
    assert code == 2 and "-:1: packet was made by checkpoint" in err


def _other_model(model) -> LatentWire:
    """The same architecture with one weight changed: another checkpoint id."""
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.adapters["a"].merge.add_(0.01)
    other.__dict__.pop("_cached_id", None)
    assert other.checkpoint_id() != model.checkpoint_id()
    return other


# -- HTTP app -------------------------------------------------------------------------------------------------

def _client(model, token=None, key=None, **settings):
    return TestClient(create_app(model, ServeConfig(**settings), token, key, max_new_tokens=3))


def _packet(client, **headers) -> str:
    response = client.post("/v1/encode", json={"context": CONTEXT}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["packet"]


def test_every_route_answers(model):
    with _client(model) as client:
        assert client.get("/healthz").json()["ok"] is True
        info = client.get("/v1/info").json()
        assert info["model_id"] == model.checkpoint_id().hex() and set(info["receivers"]) == {"a", "b"}
        encoded = client.post("/v1/encode", json={"context": CONTEXT}).json()
        assert encoded["bytes"] == len(base64.b64decode(encoded["packet"])) and encoded["tag_bytes"] == 0
        raw = client.post("/v1/encode", json={"context": CONTEXT}, headers={"accept": "application/octet-stream"})
        assert raw.content == base64.b64decode(encoded["packet"]) and raw.headers["x-packet-bytes"] == str(
            len(raw.content))
        answer = client.post("/v1/answer", json={"packet": encoded["packet"], "question": "What is the capital?",
                                                 "receiver": "b"}).json()
        assert answer["answer"] == model.answer(raw.content, "b", "What is the capital?", 3)
        assert answer["receiver_ms"] > 0 and answer["batch"] == 1
        octets = client.post("/v1/answer?receiver=b&question=What+is+the+capital%3F", content=raw.content,
                             headers={"content-type": "application/octet-stream"})
        assert octets.json()["answer"] == answer["answer"]
        metrics = client.get("/metrics").text
        assert 'latentwire_requests_total{route="/v1/answer",status="200"} 2' in metrics


def test_bad_requests_get_their_status_and_one_line(model):
    with _client(model, max_body_bytes=4096) as client:
        good = _packet(client)
        flipped = bytearray(base64.b64decode(good))
        flipped[30] ^= 1
        cases = [
            (dict(json={"packet": base64.b64encode(bytes(flipped)).decode(), "question": "Q?", "receiver": "a"}),
             400, "checksum mismatch"),
            (dict(json={"packet": base64.b64encode(base64.b64decode(good)[:20]).decode(), "question": "Q?",
                        "receiver": "a"}), 400, "too short"),
            (dict(json={"packet": "%%%", "question": "Q?", "receiver": "a"}), 400, "base64"),
            (dict(json={"packet": good, "question": "Q?", "receiver": "nope"}), 400, "field 'receiver'"),
            (dict(json={"packet": good, "receiver": "a"}), 400, "field 'question'"),
            (dict(content=b"{", headers={"content-type": "application/json"}), 400, "not JSON"),
            (dict(content=b"[1]", headers={"content-type": "application/json"}), 400, "JSON object"),
            (dict(content=b"x=1", headers={"content-type": "text/plain"}), 415, "content type"),
            (dict(json={"packet": "A" * 8000, "question": "Q?", "receiver": "a"}), 413, "max_body_bytes"),
        ]
        for request, status, message in cases:
            response = client.post("/v1/answer", **request)
            assert response.status_code == status and message in response.json()["error"], (request, response.text)
        assert client.post("/v1/encode", json={"context": ""}).status_code == 400
        assert client.get("/v1/nothing").status_code == 404


def test_wrong_model_packet_is_400(model):
    other = _other_model(model)
    with _client(model) as client:
        response = client.post("/v1/answer", json={"packet": base64.b64encode(other.encode("", CONTEXT)).decode(),
                                                   "question": "Q?", "receiver": "a"})
        assert response.status_code == 400 and "made by checkpoint" in response.json()["error"]


def test_bearer_token_and_packet_authentication(model):
    token = b"t" * 20
    with _client(model, token=token, key=KEY) as client:
        assert client.get("/healthz").status_code == 200                      # never behind the token
        assert client.get("/v1/info").status_code == 401
        assert client.get("/v1/info", headers={"authorization": "Bearer wrong"}).status_code == 401
        auth = {"authorization": "Bearer " + token.decode()}
        signed = client.post("/v1/encode", json={"context": CONTEXT}, headers=auth).json()
        assert signed["tag_bytes"] == TAG_SIZE and len(base64.b64decode(signed["packet"])) == signed["bytes"] + 32
        ok = client.post("/v1/answer", json={"packet": signed["packet"], "question": "Q?", "receiver": "a"},
                         headers=auth)
        assert ok.status_code == 200
        untagged = base64.b64encode(base64.b64decode(signed["packet"])[:-TAG_SIZE]).decode()
        refused = client.post("/v1/answer", json={"packet": untagged, "question": "Q?", "receiver": "a"},
                              headers=auth)
        assert refused.status_code == 400 and "authentication failed" in refused.json()["error"]


class _Gate:
    """Blocks the model's answer step until opened (to fill the queue deterministically)."""

    def __init__(self, model, monkeypatch):
        self.open, self.entered, original = threading.Event(), threading.Event(), model.answer_prompts

        def blocked(*args, **kwargs):
            self.entered.set()
            self.open.wait(10)
            return original(*args, **kwargs)
        monkeypatch.setattr(model, "answer_prompts", blocked)


def test_a_full_queue_is_503_with_retry_after_and_health_still_answers(model, monkeypatch):
    with _client(model, queue_limit=2, max_batch=1) as client:
        packet = _packet(client)
        gate = _Gate(model, monkeypatch)
        body = {"packet": packet, "question": "Q?", "receiver": "a"}
        results = []
        threads = [threading.Thread(target=lambda: results.append(client.post("/v1/answer", json=body)))
                   for _ in range(3)]
        threads[0].start()
        assert gate.entered.wait(10)           # one runs (blocked), then two wait: the queue is full
        threads[1].start()
        threads[2].start()
        service = client.app.state.service
        for _ in range(200):
            if service.worker.depth == 2:
                break
            threading.Event().wait(0.01)
        refused = client.post("/v1/answer", json=body)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert client.get("/healthz").status_code == 200
        gate.open.set()
        for thread in threads:
            thread.join(20)
        assert [r.status_code for r in results] == [200, 200, 200]


def test_a_slow_answer_is_504_and_waiting_answers_are_batched(model, monkeypatch):
    with _client(model, timeout_s=0.2, max_batch=4, batch_wait_ms=50) as client:
        packet = _packet(client)
        gate = _Gate(model, monkeypatch)
        response = client.post("/v1/answer", json={"packet": packet, "question": "Q?", "receiver": "a"})
        assert response.status_code == 504 and "timeout_s" in response.json()["error"]
        gate.open.set()
    with _client(model, max_batch=4, batch_wait_ms=200) as client:
        packet = _packet(client)
        results = []
        body = {"packet": packet, "question": "Q?", "receiver": "b"}
        threads = [threading.Thread(target=lambda: results.append(client.post("/v1/answer", json=body).json()))
                   for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        assert max(r["batch"] for r in results) > 1 and len({r["answer"] for r in results}) == 1


# -- demo and serve settings ------------------------------------------------------------------------------------

def test_the_demo_pins_its_settings_and_baselines_are_one_flag_away():
    from latentwire.demo import demo_config
    config = demo_config()
    assert config.checkpoint == DEFAULT and config.eval.methods == ["text", "context_budget", "latent"]
    assert (config.data.n, config.eval.budgets, config.wire.eval_bits) == (50, [20], [4])
    assert not (config.eval.shuffled_f1 or config.eval.shuffle_test or config.eval.joint)
    assert config.resolved_dtype == "" and config.encoder.input == "context"
    baselines = demo_config(baselines_only=True, overrides=["data.n=5"])
    assert baselines.checkpoint == "" and "latent" not in baselines.eval.methods and baselines.data.n == 5


@pytest.mark.parametrize("override, message", [("serve.port=0", "serve.port must be"),
                                               ("serve.port=70000", "serve.port must be in 1..65535"),
                                               ("serve.queue_limit=0", "serve.queue_limit must be"),
                                               ("serve.timeout_s=0", "serve.timeout_s must be")])
def test_bad_serve_settings_are_one_line(capsys, override, message):
    assert main(["serve", override]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_or_short_token_file_is_refused_before_loading(tmp_path, capsys):
    assert main(["serve", "--token-file", str(tmp_path / "none")]) == 2
    assert "serve.token_file" in capsys.readouterr().err
    short = tmp_path / "short"
    short.write_text("abc\n")
    assert main(["serve", "--token-file", str(short)]) == 2
    assert "at least 16 are needed" in capsys.readouterr().err
