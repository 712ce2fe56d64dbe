#!/usr/bin/env bash
# Unit tests (tiny random models) and the integration tests on the real offline receivers.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python -m pytest -q -p no:cacheprovider "$@"
