#!/usr/bin/env bash
# Resume the short run on the real pair from the CLI, SIGKILL it past step 155, resume again (bench/RESULTS.md).
# Needs runs/short_run_resume = a copy of runs/short_run after `latentwire train --config configs/short_run.yaml`.
set -u
cd "$(dirname "$0")/.."; . .venv/bin/activate; export HF_HUB_OFFLINE=1
O=runs/short_run_resume
ARGS="--config configs/short_run.yaml train.out_dir=$O train.steps=160 train.save_every=5 --quiet"
s=$(date +%s)
latentwire train $ARGS & pid=$!
until [[ "$(cat $O/checkpoints/latest)" > "step-000154" ]]; do sleep 2; kill -0 $pid 2>/dev/null || break; done
kill -9 $pid && echo "SIGKILL after $(cat $O/checkpoints/latest) at $(( $(date +%s) - s )) s"
wait $pid
s2=$(date +%s)
latentwire train $ARGS
echo "second resume: $(( $(date +%s) - s2 )) s; total $(( $(date +%s) - s )) s"
