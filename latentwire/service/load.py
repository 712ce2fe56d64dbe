"""Load generation against a running `latentwire serve` (bench/serve.py drives it): closed-loop async clients
(httpx) sending a fixed mix of routes, optionally with malformed requests mixed in, and the statistics of
what came back.

Mix: of every 10 good requests, 7 answer (receivers taken in turn), 2 encode, 1 info; a malformed request
replaces a good one with probability `bad_share`, drawn in turn from BAD_KINDS.
"""
from __future__ import annotations

import asyncio
import base64
import random
import struct
import time
import zlib
from dataclasses import dataclass, field

import httpx

GOOD_MIX = ("answer",) * 7 + ("encode",) * 2 + ("info",)
BAD_KINDS = ("truncated", "bit_flipped", "wrong_model", "oversized", "wrong_content_type")
CHECKPOINT_ID_OFFSET, CHECKPOINT_ID_SIZE = 12, 8


@dataclass
class Sample:
    """What one request did: its route kind, whether it was a malformed one, status, latency."""

    kind: str
    bad: bool
    status: int
    seconds: float
    retry_after: str | None = None


@dataclass
class Workload:
    """What the clients send: packets (raw bytes) made by the server with their questions, contexts for
    encode, the receivers to answer with, and the body limit (oversized requests exceed it)."""

    packets: list[bytes]
    questions: list[str]
    contexts: list[str]
    receivers: list[str]
    max_body_bytes: int
    headers: dict = field(default_factory=dict)


def wrong_model(packet: bytes) -> bytes:
    """`packet` stamped with another checkpoint id, its CRC recomputed: well formed, from another model."""
    data = bytearray(packet[:-4])
    data[CHECKPOINT_ID_OFFSET: CHECKPOINT_ID_OFFSET + CHECKPOINT_ID_SIZE] = bytes(
        b ^ 0xFF for b in data[CHECKPOINT_ID_OFFSET: CHECKPOINT_ID_OFFSET + CHECKPOINT_ID_SIZE])
    return bytes(data) + struct.pack("<I", zlib.crc32(bytes(data)))


def bad_request(kind: str, workload: Workload, rng: random.Random) -> dict:
    """httpx request arguments of a malformed /v1/answer request of `kind` (one of BAD_KINDS)."""
    index = rng.randrange(len(workload.packets))
    packet, question = workload.packets[index], workload.questions[index]
    if kind == "truncated":
        packet = packet[: rng.randrange(1, len(packet))]
    elif kind == "bit_flipped":
        bit = rng.randrange(8 * len(packet))
        packet = bytearray(packet)
        packet[bit // 8] ^= 1 << (bit % 8)
        packet = bytes(packet)
    elif kind == "wrong_model":
        packet = wrong_model(packet)
    body = {"packet": base64.b64encode(packet).decode(), "question": question, "receiver": workload.receivers[0]}
    if kind == "oversized":
        body["question"] = "x" * (workload.max_body_bytes + 1)
    if kind == "wrong_content_type":
        return {"url": "/v1/answer", "content": str(body).encode(), "headers": {"content-type": "text/plain"}}
    return {"url": "/v1/answer", "json": body}


def good_request(kind: str, workload: Workload, rng: random.Random, turn: int) -> dict:
    """httpx request arguments of a good request of `kind` (answer, encode or info)."""
    index = rng.randrange(len(workload.packets))
    if kind == "answer":
        receiver = workload.receivers[turn % len(workload.receivers)]
        return {"url": "/v1/answer", "json": {"packet": base64.b64encode(workload.packets[index]).decode(),
                                              "question": workload.questions[index], "receiver": receiver}}
    if kind == "encode":
        return {"url": "/v1/encode", "json": {"context": workload.contexts[index]}}
    return {"url": "/v1/info", "method": "GET"}


async def _client(http: httpx.AsyncClient, workload: Workload, seconds: float, bad_share: float, seed: int,
                  samples: list[Sample], backoff_s: float) -> None:
    rng, turn, end = random.Random(seed), seed, time.perf_counter() + seconds
    while time.perf_counter() < end:
        turn += 1
        bad = rng.random() < bad_share
        kind = BAD_KINDS[turn % len(BAD_KINDS)] if bad else GOOD_MIX[turn % len(GOOD_MIX)]
        request = bad_request(kind, workload, rng) if bad else good_request(kind, workload, rng, turn)
        method = request.pop("method", "POST")
        start = time.perf_counter()
        try:
            response = await http.request(method, headers={**workload.headers, **request.pop("headers", {})},
                                          **request)
            status, retry = response.status_code, response.headers.get("retry-after")
        except httpx.HTTPError:
            status, retry = 0, None        # a failed connection or timeout: counted as a failure
        samples.append(Sample(kind, bad, status, time.perf_counter() - start, retry))
        if status == 503:
            await asyncio.sleep(backoff_s)


async def run_load(url: str, workload: Workload, clients: int, seconds: float, bad_share: float = 0.0,
                   backoff_s: float = 0.25, timeout_s: float = 120.0) -> list[Sample]:
    """`clients` closed-loop clients sending for `seconds` each; every request's Sample."""
    samples: list[Sample] = []
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits) as http:
        await asyncio.gather(*(_client(http, workload, seconds, bad_share, seed, samples, backoff_s)
                               for seed in range(clients)))
    return samples


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def summarize(samples: list[Sample], seconds: float) -> dict:
    """Requests/s, latency percentiles (ms) of the accepted good requests, and the outcome counts: failed
    (a good request not answered 200 and not refused with 503), refused (503, with Retry-After or not),
    bad requests by status class (every one should be 4xx)."""
    good = [s for s in samples if not s.bad]
    accepted = [s for s in good if s.status == 200]
    latencies = [1000 * s.seconds for s in accepted]
    refused = [s for s in good if s.status == 503]
    bad = [s for s in samples if s.bad]
    by_status: dict[str, int] = {}
    for s in samples:
        key = f"{'bad' if s.bad else 'good'}:{s.status}"
        by_status[key] = by_status.get(key, 0) + 1
    return {"requests": len(samples), "ok": len(accepted), "rps": round(len(accepted) / seconds, 3),
            "p50_ms": round(percentile(latencies, 50), 1), "p95_ms": round(percentile(latencies, 95), 1),
            "p99_ms": round(percentile(latencies, 99), 1),
            "failed": sum(1 for s in good if s.status not in (200, 503)),
            "refused_503": len(refused), "refused_with_retry_after": sum(1 for s in refused if s.retry_after),
            "bad": len(bad), "bad_4xx": sum(1 for s in bad if 400 <= s.status < 500),
            "by_status": dict(sorted(by_status.items())),
            "answer_p50_ms": round(percentile([1000 * s.seconds for s in accepted if s.kind == "answer"], 50), 1)}
