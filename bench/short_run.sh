#!/usr/bin/env bash
# Issue 3's documented CPU run: train on the default pair, SIGKILL it once past step 50, resume it,
# then evaluate the latent at every bit width (bench/latent.py -> bench/results/latent.json).
#   bash bench/short_run.sh            (THREADS=2 to give it both cores)
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=${THREADS:-1}
OUT=runs/short_run
start=$(date +%s)
latentwire train --config configs/short_run.yaml --quiet &
pid=$!
until [ -f $OUT/checkpoints/latest ] && [[ "$(cat $OUT/checkpoints/latest)" > "step-000049" ]]; do
  sleep 5; kill -0 $pid 2>/dev/null || break
done
kill -9 $pid 2>/dev/null && echo "killed the trainer (SIGKILL) after $(cat $OUT/checkpoints/latest)"
wait $pid || true
latentwire train --config configs/short_run.yaml --quiet          # resumes from the newest checkpoint
echo "train wall time: $(( $(date +%s) - start )) s"
python bench/latent.py checkpoint=$OUT
echo "total wall time: $(( $(date +%s) - start )) s"
