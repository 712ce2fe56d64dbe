"""Load test of `latentwire serve` (issue 19) on the shipped weights, over real HTTP on loopback.

    python bench/serve.py                     # 1, 4, 16 clients x 60 s; overload; 20% malformed; batching off
    python bench/serve.py --seconds 10 --overload-seconds 10 --bad-seconds 10      # a quick look

The server runs as a subprocess (`latentwire serve`, queue limit 32 > 16 clients). Clients are closed-loop
(latentwire/service/load.py: 7 answer, 2 encode, 1 info of every 10; receivers in turn). Runs:
  load-1/4/16     requests/s, p50/p95/p99 latency of accepted requests, failed requests (the bar: 0);
  overload        4 x the queue limit of clients: the excess refused with 503 + Retry-After, no accepted fails;
  malformed       16 clients, 20% malformed (truncated, bit-flipped, wrong model id, oversized, wrong content
                  type): every bad one 4xx, no good one lost, the server alive, its resident memory flat;
  no-batching     16 clients against a server with serve.max_batch=1 (what micro-batching buys).
Server peak RSS (VmHWM) and RSS (VmRSS) come from /proc. Prints a table, writes bench/results/serve.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).parent
COLUMNS = ["run", "clients", "seconds", "requests", "ok", "rps", "p50_ms", "p95_ms", "p99_ms", "failed",
           "refused_503", "bad", "bad_4xx", "rss_mb", "peak_rss_mb"]


def memory_mb(pid: int) -> dict:
    """Resident and peak resident memory of process `pid` in MB (from /proc)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"rss_mb": round(int(fields["VmRSS"].split()[0]) / 1024, 1),
            "peak_rss_mb": round(int(fields["VmHWM"].split()[0]) / 1024, 1)}


class Server:
    """`latentwire serve` in a subprocess on a free loopback port, up once /healthz answers."""

    def __init__(self, model: str, overrides: list[str], log: Path):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "w")
        self.process = subprocess.Popen([sys.executable, "-m", "latentwire.cli", "serve", "--model", model,
                                         "--port", str(self.port), *overrides], stderr=self.log,
                                        stdout=subprocess.DEVNULL)
        deadline = time.time() + 600
        while time.time() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.5)
        self.stop()
        raise SystemExit(f"server did not come up; see {log}")

    def alive(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=10).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)
        self.log.close()


def workload(server: Server, n: int, max_body_bytes: int):
    """n validation examples' contexts encoded by the server; the load's Workload."""
    from latentwire.data.loaders import load_examples
    from latentwire.service.load import Workload

    examples, _ = load_examples("squad", n=n, seed=0)
    info = httpx.get(f"{server.url}/v1/info").json()
    packets = [httpx.post(f"{server.url}/v1/encode", json={"context": e.context},
                          headers={"accept": "application/octet-stream"}, timeout=120).content for e in examples]
    return Workload(packets, [e.question for e in examples], [e.context for e in examples],
                    sorted(info["receivers"]), max_body_bytes), info


def measure(server: Server, work, name: str, clients: int, seconds: float, bad_share: float = 0.0) -> dict:
    """One load run against `server`: its summary row with the server's memory before and after."""
    from latentwire.service.load import run_load, summarize

    before = memory_mb(server.process.pid)
    print(f"{name}: {clients} clients for {seconds:.0f} s ...", flush=True)
    samples = asyncio.run(run_load(server.url, work, clients, seconds, bad_share))
    after = memory_mb(server.process.pid)
    return {"run": name, "clients": clients, "seconds": seconds, "bad_share": bad_share, **summarize(samples, seconds),
            "rss_before_mb": before["rss_mb"], **after, "alive_after": server.alive()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--overload-seconds", type=float, default=30)
    parser.add_argument("--bad-seconds", type=float, default=60)
    parser.add_argument("--bad-share", type=float, default=0.2)
    parser.add_argument("--queue-limit", type=int, default=32)
    parser.add_argument("--max-body-bytes", type=int, default=16384)
    parser.add_argument("--n", type=int, default=50, help="validation examples the load draws from")
    parser.add_argument("--out", default=str(HERE / "results" / "serve.json"))
    args = parser.parse_args()
    from latentwire.atomic import atomic_write_bytes
    from latentwire.precision import machine_info
    from latentwire.provenance import code_commit

    logs = HERE.parent / "runs" / "bench-serve"
    logs.mkdir(parents=True, exist_ok=True)
    settings = [f"serve.queue_limit={args.queue_limit}", f"serve.max_body_bytes={args.max_body_bytes}"]
    started = time.perf_counter()
    server = Server(args.model, settings, logs / "server.log")
    load_seconds = round(time.perf_counter() - started, 1)
    rows = []
    try:
        work, info = workload(server, args.n, args.max_body_bytes)
        rows += [measure(server, work, f"load-{c}", c, args.seconds) for c in args.levels]
        rows.append(measure(server, work, "overload", 4 * args.queue_limit, args.overload_seconds))
        rows.append(measure(server, work, "malformed", max(args.levels), args.bad_seconds, args.bad_share))
    finally:
        server.stop()
    server = Server(args.model, [*settings, "serve.max_batch=1"], logs / "server-no-batching.log")
    try:
        rows.append(measure(server, work, "no-batching", max(args.levels), args.seconds))
    finally:
        server.stop()
    result = {"machine": machine_info(),
              "commit": code_commit(), "model_id": info["model_id"], "server_start_s": load_seconds,
              "settings": {"queue_limit": args.queue_limit, "max_body_bytes": args.max_body_bytes,
                           "max_batch": info["limits"]["max_batch"], "mix": "7 answer : 2 encode : 1 info",
                           "receivers": sorted(info["receivers"]), "examples": args.n}, "rows": rows}
    atomic_write_bytes(Path(args.out), (json.dumps(result, indent=2) + "\n").encode())
    print("| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS))
    for row in rows:
        print("| " + " | ".join(str(row.get(c, "")) for c in COLUMNS) + " |")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
