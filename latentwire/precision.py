"""Which precision a run computes in: `dtype: auto` picks bfloat16 where the processor multiplies bfloat16
matrices fast (Intel AMX, AVX512-BF16; a GPU that supports it) and float32 everywhere else.

On a CPU whose flags promise fast bfloat16, a one-off micro-benchmark confirms it (bfloat16 must beat
float32 by BF16_MARGIN on a 1024 x 2048 @ 2048 x 2048 matmul); its verdict is cached per machine (CPU
model, flags and torch version) under the LatentWire cache. Trainable weights and checkpoints stay float32
whatever the choice: bfloat16 is for the frozen receivers' weights and, under autocast, for the compute.
"""
from __future__ import annotations

import json
import os
import platform
import time
from functools import lru_cache
from pathlib import Path

import torch

from latentwire.llm.offline import cache_root

DTYPES = ("auto", "float32", "bfloat16", "float16")
TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
BF16_MARGIN = 1.3


def cpu_info(path: str = "/proc/cpuinfo") -> tuple[str, set[str]]:
    """(CPU model name, its feature flags) from /proc/cpuinfo; (platform's name, no flags) where it is absent."""
    try:
        text = Path(path).read_text()
    except OSError:
        return platform.processor() or platform.machine(), set()
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    return fields.get("model name", platform.machine()), set(fields.get("flags", "").split())


def machine_info() -> dict:
    """What a benchmark records of the machine it timed on: {"cpu", "cores", "bf16_flags"}."""
    model, flags = cpu_info()
    return {"cpu": model, "cores": os.cpu_count(), "bf16_flags": sorted(flags & {"amx_bf16", "avx512_bf16"})}


def matmul_seconds(dtype: torch.dtype, repeats: int = 3) -> float:
    """Best time of a 1024 x 2048 @ 2048 x 2048 matmul in `dtype` on one thread (CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a, b = torch.randn(1024, 2048).to(dtype), torch.randn(2048, 2048).to(dtype)
        a @ b
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - started)
        return best
    finally:
        torch.set_num_threads(threads)


def _cache_file() -> Path:
    return cache_root() / "precision.json"


def cpu_runs_bfloat16_fast(flags: set[str] | None = None, benchmark=matmul_seconds) -> bool:
    """Whether this CPU multiplies bfloat16 matrices at least BF16_MARGIN x faster than float32: never without
    one of BF16_FLAGS; with one, as measured once (and cached) by `benchmark(dtype) -> seconds`."""
    model, own_flags = cpu_info()
    flags = own_flags if flags is None else flags
    if not flags & set(BF16_FLAGS):
        return False
    key = f"{model}|{' '.join(sorted(flags & set(BF16_FLAGS)))}|torch {torch.__version__}"
    path = _cache_file()
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = {}
    if key not in cached:
        ratio = benchmark(torch.float32) / benchmark(torch.bfloat16)
        cached[key] = {"float32_over_bfloat16": ratio, "fast": ratio >= BF16_MARGIN}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(cached, indent=2))
            temporary.replace(path)
        except OSError:
            pass   # a read-only cache: measure again next time
    return bool(cached[key]["fast"])


@lru_cache(maxsize=None)
def auto_dtype(device: str = "cpu") -> str:
    """What `auto` means on `device` (cpu or cuda): bfloat16 where it is fast, float32 elsewhere."""
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"
    return "bfloat16" if cpu_runs_bfloat16_fast() else "float32"


def resolve_dtype(requested: str, device: str = "cpu") -> str:
    """The dtype name a setting of `dtype` (auto, float32, bfloat16, float16) means on `device`."""
    if requested not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {requested!r}")
    return auto_dtype(device) if requested == "auto" else requested


def autocast(resolved: str, device: str = "cpu"):
    """The autocast context of a run computing in `resolved` (a no-op for float32)."""
    enabled = resolved != "float32"
    return torch.autocast(device_type=device.split(":")[0], dtype=TORCH_DTYPES[resolved], enabled=enabled)


def full_precision(device_type: str = "cpu"):
    """A block that computes in float32 even inside an autocast region (RMS calibration, code decoding)."""
    return torch.autocast(device_type=device_type, enabled=False)


def resolve_run(config, device: str = "cpu") -> str:
    """The dtype a run of `config` computes in, written into config.resolved_dtype (kept if already set)."""
    if not config.resolved_dtype:
        config.resolved_dtype = resolve_dtype(config.dtype, device)
    return config.resolved_dtype


def receiver_dtype(spec, config) -> str:
    """The weights dtype of receiver `spec` (a ReceiverConfig) in a run of `config`."""
    return resolve_run(config) if spec.dtype == "auto" else spec.dtype


def mixed_precision(config) -> str:
    """accelerate's mixed_precision for training under `config`: train.mixed_precision, auto resolved."""
    if config.train.mixed_precision != "auto":
        return config.train.mixed_precision
    return {"bfloat16": "bf16", "float16": "fp16"}.get(resolve_run(config), "no")
