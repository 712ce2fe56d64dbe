"""The HTTP API (Starlette, served by uvicorn): every client byte is checked here, model work goes to the
worker thread, every error is one JSON line `{"error": ...}` with its status code.

    POST /v1/encode   {"context", "question"?} -> {"packet": base64, bytes, tag_bytes, sender_ms}
                      (Accept: application/octet-stream -> the raw packet, sizes in X-Packet-Bytes / X-Tag-Bytes)
    POST /v1/answer   {"packet": base64, "question", "receiver"} -> {answer, receiver, receiver_ms, queue_ms, batch}
                      (or the raw packet as application/octet-stream, ?receiver=&question=)
    GET  /v1/info     model id, receivers, packet layout, limits, auth
    GET  /healthz     {"ok": true} (never queued, never behind the token)
    GET  /metrics     request counters by route and status, queue depth, batches (Prometheus text)
"""
from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import time
from collections import Counter
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from latentwire.config import ServeConfig
from latentwire.errors import Overloaded, PacketError
from latentwire.service.jsonl import decode_base64, text_value
from latentwire.service.worker import ModelWorker
from latentwire.system import LatentWire
from latentwire.wire.auth import TAG_SIZE, sign, verify
from latentwire.wire.packet import VERSION, unpack

LOG = logging.getLogger("latentwire.serve")
RETRY_AFTER_S = 1
JSON, OCTETS = "application/json", "application/octet-stream"


def create_app(model: LatentWire, settings: ServeConfig, token: bytes | None = None, key: bytes | None = None,
               max_new_tokens: int = 16) -> RequestLog:
    """The ASGI app serving `model`; its worker thread starts now and stops with the app's lifespan."""
    service = Service(model, settings, token, key, max_new_tokens)

    @asynccontextmanager
    async def lifespan(app):
        yield
        service.worker.stop()

    routes = [Route("/v1/encode", service.encode, methods=["POST"]),
              Route("/v1/answer", service.answer, methods=["POST"]),
              Route("/v1/info", service.info), Route("/healthz", service.health), Route("/metrics", service.metrics)]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _error_response, Exception: _crash_response},
                    lifespan=lifespan)
    app.state.service = service
    return RequestLog(app, service.counts)


class Service:
    """The route handlers over one model, its worker thread, the optional bearer token and packet key."""

    def __init__(self, model: LatentWire, settings: ServeConfig, token: bytes | None, key: bytes | None,
                 max_new_tokens: int):
        self.model, self.settings, self.token, self.key = model, settings, token, key
        self.worker = ModelWorker(model, settings.queue_limit, settings.max_batch, settings.batch_wait_ms / 1000,
                                  max_new_tokens).start()
        self.model_id = model.checkpoint_id()
        self.counts: Counter = Counter()

    async def run(self, kind: str, *args) -> dict:
        """The worker's result for one job: 503 when the queue is full, 504 past the timeout, 400 when the
        model refuses the input."""
        try:
            future = self.worker.submit(kind, *args)
        except Overloaded as error:
            raise HTTPException(503, str(error), headers={"Retry-After": str(RETRY_AFTER_S)}) from None
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.settings.timeout_s)
        except asyncio.TimeoutError:
            future.cancel()
            raise HTTPException(504, f"no answer within serve.timeout_s={self.settings.timeout_s} s") from None
        except asyncio.CancelledError:
            raise HTTPException(503, "the server is shutting down", headers={"Retry-After": "5"}) from None
        except ValueError as error:     # PacketError, a prompt the model refuses
            raise HTTPException(400, _one_line(error)) from None

    async def encode(self, request: Request) -> Response:
        _authorize(request, self.token)
        body = _json_object(await _body(request, self.settings.max_body_bytes), request)
        context = _text(body, "context", required=self.model.config.encoder.input == "context")
        question = _text(body, "question", required=False)
        result = await self.run("encode", question, context)
        wire = sign(result["packet"], self.key) if self.key else result["packet"]
        sizes = {"bytes": len(result["packet"]), "tag_bytes": TAG_SIZE if self.key else 0}
        if OCTETS in request.headers.get("accept", ""):
            return Response(wire, media_type=OCTETS, headers={"X-Packet-Bytes": str(sizes["bytes"]),
                                                              "X-Tag-Bytes": str(sizes["tag_bytes"])})
        return JSONResponse({"packet": base64.b64encode(wire).decode(), **sizes, "sender_ms": result["sender_ms"],
                             "model_id": self.model_id.hex()})

    async def answer(self, request: Request) -> Response:
        _authorize(request, self.token)
        raw = await _body(request, self.settings.max_body_bytes)
        if _content_type(request) == OCTETS:
            packet, fields = raw, dict(request.query_params)
        else:
            fields = _json_object(raw, request)
            packet = _base64(fields.get("packet"))
        receiver = fields.get("receiver")
        if receiver not in self.model.receivers:
            raise HTTPException(400, f"field 'receiver' must be one of {sorted(self.model.receivers)}, "
                                     f"got {receiver!r:.60}")
        question = _text(fields, "question", required=self.model.config.encoder.input == "context")
        try:
            packet = verify(packet, self.key) if self.key else packet
            unpack(packet, expected_checkpoint_id=self.model_id)       # refused before it waits in the queue
        except PacketError as error:
            raise HTTPException(400, _one_line(error)) from None
        return JSONResponse(await self.run("answer", packet, receiver, question))

    async def info(self, request: Request) -> Response:
        _authorize(request, self.token)
        config, settings = self.model.config, self.settings
        return JSONResponse({
            "model_id": self.model_id.hex(), "packet_versions": [VERSION],
            "receivers": {spec.name: spec.model for spec in config.receivers},
            "packet": {"M": config.encoder.M, "d_z": config.encoder.d_z, "bits": config.wire.bits,
                       "group_size": config.wire.group_size, "carries": config.encoder.input},
            "auth": {"token": self.token is not None, "packet_hmac": self.key is not None,
                     "tag_bytes": TAG_SIZE if self.key else 0},
            "limits": {"max_body_bytes": settings.max_body_bytes, "queue_limit": settings.queue_limit,
                       "timeout_s": settings.timeout_s, "max_batch": settings.max_batch}})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "queue": self.worker.depth})

    async def metrics(self, request: Request) -> Response:
        _authorize(request, self.token)
        lines = [f'latentwire_requests_total{{route="{route}",status="{status}"}} {n}'
                 for (route, status), n in sorted(self.counts.items())]
        lines.append(f"latentwire_queue_depth {self.worker.depth}")
        lines += [f"latentwire_{name}_total {self.worker.stats[name]}"
                  for name in ("encoded", "answered", "batches", "refused")]
        return PlainTextResponse("\n".join(lines) + "\n")


class RequestLog:
    """ASGI middleware: one JSON log line a request (route, status, ms) and the counts /metrics reports."""

    def __init__(self, app, counts: Counter):
        self.app, self.counts = app, counts
        self.state = app.state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), {"code": 500}

        async def send_status(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)
        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope["path"] if scope["path"] in _ROUTES else "other"
            self.counts[(route, status["code"])] += 1
            LOG.info(json.dumps({"route": route, "method": scope["method"], "status": status["code"],
                                 "ms": round(1000 * (time.perf_counter() - start), 2)}))


_ROUTES = ("/v1/encode", "/v1/answer", "/v1/info", "/healthz", "/metrics")


async def _error_response(request: Request, error: HTTPException) -> Response:
    return JSONResponse({"error": error.detail}, status_code=error.status_code, headers=error.headers)


async def _crash_response(request: Request, error: Exception) -> Response:
    LOG.exception("unexpected error")
    return JSONResponse({"error": f"internal error: {type(error).__name__}"}, status_code=500)


def _one_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _authorize(request: Request, token: bytes | None) -> None:
    if token is None:
        return
    given = request.headers.get("authorization", "").encode()
    if not hmac.compare_digest(given, b"Bearer " + token):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past `limit` bytes (declared or actually sent)."""
    declared = request.headers.get("content-length", "")
    if declared and (not declared.isdigit() or int(declared) > limit):
        raise HTTPException(413, f"request body of {declared} bytes is over serve.max_body_bytes={limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body is over serve.max_body_bytes={limit}")
        chunks.append(chunk)
    return b"".join(chunks)


def _json_object(raw: bytes, request: Request) -> dict:
    if _content_type(request) != JSON:
        raise HTTPException(415, f"content type must be {JSON}"
                                 f"{' or ' + OCTETS if request.url.path == '/v1/answer' else ''}")
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HTTPException(400, f"body is not JSON: {_one_line(error)}") from None
    if not isinstance(value, dict):
        raise HTTPException(400, f"body must be a JSON object, got {type(value).__name__}")
    return value


def _text(fields: dict, name: str, required: bool) -> str:
    try:
        return text_value(fields, name, required)
    except ValueError as error:
        raise HTTPException(400, str(error)) from None


def _base64(value) -> bytes:
    try:
        return decode_base64(value)
    except (TypeError, ValueError) as error:
        raise HTTPException(400, str(error)) from None
