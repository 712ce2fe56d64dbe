"""Reliability benchmark: untrusted packets, corrupt checkpoints, kills during training, bad data rows.

    python bench/reliability.py                 # ~3 minutes on 2 CPU cores
    python bench/reliability.py --packets 20000 --kills 8

Runs on tiny randomly initialised receivers (latentwire/llm/tiny.py): what is measured is the machinery
(decoder, checkpoint loading, resume, data loading), not model quality. Prints a table and writes
bench/results/reliability.json. Every check must end with `failures` = 0 and `examples_lost` = 0.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zlib
from pathlib import Path

import torch

from latentwire.data.loaders import load_jsonl, load_squad
from latentwire.eval.report import plain_table
from latentwire.provenance import code_commit
from latentwire.train.checkpoint import CheckpointError, latest_checkpoint, read_tensors
from latentwire.train.trainer import examples_trained
from latentwire.wire import PacketError, decode_latent, encode_latent
from latentwire.wire.packet import HEADER_SIZE

HERE = Path(__file__).parent

CHECKPOINT_ID = bytes(range(8))
COLUMNS = ["check", "cases", "handled", "refused", "accepted_well_formed", "failures", "examples_lost", "examples_repeated", "max_ms", "peak_mib"]


def _reseal(data: bytearray) -> bytes:
    """Recompute the CRC so that a mutation reaches the checks behind the checksum."""
    body = bytes(data[:-4])
    return body + zlib.crc32(body).to_bytes(4, "little")


def _mutations(packet: bytes, rng: random.Random):
    """(kind, bytes) pairs: truncations, bit flips, header rewrites (resealed), random bytes, foreign ids."""
    kind = rng.choice(["truncate", "bit_flips", "header_field", "header_field_resealed", "random_bytes",
                       "huge_declared_size", "foreign_checkpoint", "trailing_bytes"])
    data = bytearray(packet)
    if kind == "truncate":
        return kind, bytes(data[:rng.randrange(len(data))])
    if kind == "bit_flips":
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return kind, bytes(data)
    if kind.startswith("header_field"):
        offset = rng.randrange(HEADER_SIZE)
        data[offset] = (data[offset] + rng.randint(1, 255)) % 256
        return kind, _reseal(data) if kind.endswith("resealed") else bytes(data)
    if kind == "random_bytes":
        return kind, bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 2 * len(packet))))
    if kind == "huge_declared_size":
        data[8:12] = (0xFFFF).to_bytes(2, "little") * 2          # M = d = 65535
        data[20:24] = (0xFFFFFFFF).to_bytes(4, "little")        # payload length 4 GiB
        return kind, _reseal(data)
    if kind == "foreign_checkpoint":
        data[12:20] = bytes(rng.getrandbits(8) for _ in range(8))
        return kind, _reseal(data)
    return kind, packet + bytes(rng.randint(1, 16))


def fuzz_packets(n: int, seed: int = 0) -> dict:
    """Decode n mutated packets: each must raise a one-line PacketError, unless the mutation left a
    well-formed packet (unchanged, or a header field rewritten with the checksum recomputed)."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    tracemalloc.start()
    failures, refused, harmless, slowest, kinds = [], 0, 0, 0.0, {}
    z_sent = decode_latent
    for index in range(n):
        bits = rng.choice([16, 8, 6, 4])
        z = torch.randn(rng.randint(1, 64), rng.randint(1, 64))
        packet = encode_latent(z, bits, rng.choice([8, 16, 32, 64]), CHECKPOINT_ID)
        kind, data = _mutations(packet, rng)
        kinds[kind] = kinds.get(kind, 0) + 1
        started = time.perf_counter()
        try:
            decoded = decode_latent(data, expected_checkpoint_id=CHECKPOINT_ID)
            if data == packet or (kind.endswith("resealed") and torch.equal(decoded, z_sent(packet))):
                harmless += 1    # unchanged, or a resealed header field the format ignores (fp16 group size)
            elif kind.endswith("resealed") and decoded.isfinite().all():
                harmless += 1    # a well-formed packet with a valid checksum: a sender may send it
            else:
                failures.append(f"{kind} #{index}: accepted a corrupted packet")
        except PacketError as error:
            refused += 1
            if "\n" in str(error) or not str(error):
                failures.append(f"{kind} #{index}: error is not one line")
        except Exception as error:  # anything but PacketError is a defect
            failures.append(f"{kind} #{index}: {type(error).__name__}: {error}")
        slowest = max(slowest, time.perf_counter() - started)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"check": "packets fuzzed", "cases": n, "handled": refused + harmless, "refused": refused,
            "accepted_well_formed": harmless, "failures": len(failures),
            "max_ms": round(1000 * slowest, 2), "peak_mib": round(peak / 2**20, 2),
            "detail": ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())), "first_failures": failures[:5]}


def _tiny_models(root: Path) -> list[Path]:
    from latentwire.llm.tiny import save_tiny_pair
    return save_tiny_pair(root)


def _train_args(models: list[Path], out: Path, steps: int) -> list[str]:
    return ["train", "--quiet", f"receivers=[{{name: a, model: {models[0]}}}, {{name: b, model: {models[1]}}}]",
            "encoder.kind=byte", "encoder.M=4", "encoder.d_z=8", "encoder.width=32", "encoder.layers=1",
            "loss.kd_top_k=5", "train.batch_size=2", "train.n_train=10", f"train.steps={steps}", "train.warmup=1",
            "train.save_every=1", "train.log_every=1", f"train.out_dir={out}"]


KILL_IN_SAVE = ["-m", "latentwire.train.kill_in_save"]   # the CLI, killed inside a checkpoint write


def kill_resume(models: list[Path], root: Path, kills: int, steps: int, seed: int = 0) -> dict:
    """SIGKILL a training run `kills` times (at random moments, and inside checkpoint writes), resume it
    each time, then compare with an uninterrupted run: same weights, every step's examples trained once."""
    rng = random.Random(seed)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cli = [sys.executable, "-m", "latentwire.cli"]
    reference, killed = root / "reference", root / "killed"
    subprocess.run(cli + _train_args(models, reference, steps), check=True, env=env, capture_output=True)
    survived, moments = 0, []
    for cycle in range(kills):
        newest = latest_checkpoint(killed)
        done = int(newest.name.split("-")[1]) if newest else 0
        if done >= steps - 1:
            break
        if cycle % 2:   # inside a checkpoint write: after the model file, before the optimizer file
            write = 2 * rng.randint(1, max(1, steps - done - 1)) + 1
            subprocess.run([sys.executable, *KILL_IN_SAVE] + _train_args(models, killed, steps),
                           env={**env, "DIE_AT_WRITE": str(write)}, capture_output=True)
            moments.append(f"in write {write}")
        else:           # at a random moment of a step, once a checkpoint or two have been written
            process = subprocess.Popen(cli + _train_args(models, killed, steps), env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            target, deadline = done + rng.randint(1, 2), time.time() + 300
            while process.poll() is None and time.time() < deadline:
                newest = latest_checkpoint(killed)
                if newest is not None and int(newest.name.split("-")[1]) >= target:
                    break
                time.sleep(0.01)
            delay = rng.uniform(0.0, 0.3)
            time.sleep(delay)
            if process.poll() is not None:
                moments.append("(run ended before the kill)")
                continue
            process.send_signal(signal.SIGKILL)
            process.wait()
            moments.append(f"{delay:.2f}s after step {target}")
        survived += 1
    subprocess.run(cli + _train_args(models, killed, steps), check=True, env=env, capture_output=True)
    expected, got = (read_tensors(latest_checkpoint(r) / "model.safetensors") for r in (reference, killed))
    max_diff = max((expected[k] - got[k]).abs().max().item() for k in expected)
    want, have = examples_trained(reference / "examples.jsonl"), examples_trained(killed / "examples.jsonl")
    lost = sum(max(0, len(want[s]) - len(set(want[s]) & set(have.get(s, [])))) for s in want)
    repeated = sum(len(v) for v in have.values()) - sum(len(v) for v in want.values()) + lost
    failures = int(max_diff > 1e-6) + int(lost > 0) + int(repeated > 0) + int(set(have) != set(range(1, steps + 1)))
    return {"check": "kill/resume cycles", "cases": survived, "handled": survived, "failures": failures,
            "examples_lost": lost, "examples_repeated": repeated, "max_weight_diff": max_diff,
            "detail": f"{steps} steps; kills {', '.join(moments)}"}


def corrupt_checkpoints(models: list[Path], root: Path) -> dict:
    """Truncate, tamper with, delete and garble each file of a checkpoint: every case must be refused
    with a CheckpointError naming the file."""
    from safetensors.torch import load_file, save_file

    from latentwire.train.load import load_trained
    out = root / "ckpt"
    subprocess.run([sys.executable, "-m", "latentwire.cli"] + _train_args(models, out, 1), check=True,
                   env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True)
    folder = latest_checkpoint(out)
    receivers: dict = {}
    load_trained(folder, receivers)  # loads the tiny receivers once; the clean checkpoint must load

    def tamper(path: Path) -> None:
        tensors = load_file(str(path))
        key = sorted(tensors)[0]
        tensors[key] = tensors[key] + 0.01
        save_file(tensors, str(path))

    cases = {
        "model truncated": ("model.safetensors", lambda p: p.write_bytes(p.read_bytes()[:100])),
        "model tampered": ("model.safetensors", tamper),
        "model garbage": ("model.safetensors", lambda p: p.write_bytes(os.urandom(4096))),
        "model missing": ("model.safetensors", lambda p: p.unlink()),
        "state.json cut": ("state.json", lambda p: p.write_text(p.read_text()[:-5])),
        "config.json unknown field": ("config.json", lambda p: p.write_text('{"encoder": {"bogus": 1}}')),
        "config.json binary": ("config.json", lambda p: p.write_bytes(b"\xff\xfe\x00")),
    }
    failures, handled = [], 0
    for name, (file, damage) in cases.items():
        path = folder / file
        original = path.read_bytes()
        damage(path)
        try:
            load_trained(folder, receivers)
            failures.append(f"{name}: loaded")
        except CheckpointError as error:
            handled += 1
            if str(path) not in str(error):
                failures.append(f"{name}: error does not name {path}: {error}")
        except Exception as error:
            failures.append(f"{name}: {type(error).__name__}: {error}")
        path.write_bytes(original)
    return {"check": "corrupt checkpoints", "cases": len(cases), "handled": handled, "failures": len(failures),
            "detail": ", ".join(cases), "first_failures": failures[:5]}


def bad_rows(root: Path) -> dict:
    """Load a file of bad rows of every kind among good ones: bad ones counted and skipped, good ones kept."""
    good = [{"id": f"ok{i}", "question": "Who?", "context": "Ann is here.", "answers": ["Ann"]} for i in range(5)]
    bad = [b'{"id": "utf", "question": "\xff\xfe", "context": "C", "answers": ["A"]}',
           json.dumps({"id": "noanswer", "question": "Q?", "context": "C.", "answers": []}).encode(),
           json.dumps({"id": "emptyctx", "question": "Q?", "context": "  ", "answers": ["A"]}).encode(),
           json.dumps({"id": "emptyq", "question": "", "context": "C.", "answers": ["A"]}).encode(),
           json.dumps({"id": "long", "question": "Q?", "context": "x" * 200_001, "answers": ["A"]}).encode(),
           json.dumps({"id": "types", "question": 5, "context": ["C"], "answers": ["A"]}).encode(),
           b"[1, 2]", b"{not json"]
    path = root / "rows.jsonl"
    path.write_bytes(b"\n".join([json.dumps(g).encode() for g in good] + bad))
    examples, report = load_jsonl(path)
    squad, squad_report = load_squad(None, split="all")
    met = sum(report.skipped.values())
    failures = int(len(examples) != len(good)) + int(met != len(bad))
    return {"check": "bad data rows", "cases": len(bad), "handled": met, "failures": failures,
            "detail": f"jsonl: {dict(report.skipped)}; shipped SQuAD slice: {squad_report.kept} kept, "
                      f"{sum(squad_report.skipped.values())} skipped"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packets", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    commit = code_commit()
    rows = [fuzz_packets(args.packets)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models = _tiny_models(root / "models")
        rows.append(bad_rows(root))
        rows.append(corrupt_checkpoints(models, root))
        rows.append(kill_resume(models, root, args.kills, args.steps))
    for row in rows:
        row["commit"] = commit
    print(plain_table(rows, COLUMNS))
    for row in rows:
        print(f"- {row['check']}: {row['detail']}" + (f"; FAILURES: {row['first_failures']}"
                                                       if row.get("first_failures") else ""))
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "reliability.json").write_text(json.dumps(rows, indent=2) + "\n")
    if any(row["failures"] for row in rows) or any(row.get("examples_lost") for row in rows):
        raise SystemExit("reliability: failures above")


if __name__ == "__main__":
    main()
