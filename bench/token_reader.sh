#!/usr/bin/env bash
# Issue 18's training of the lossless token reader on the default pair, both stages, then its curve.
#   bash bench/token_reader.sh            (rerun after a kill: every stage resumes where it stopped)
# Stage 1: continuation of training-split spans (unlabelled); stage 2: context-only QA from stage 1 (1,000
# steps of batch 8, k drawn per step from encoder.ks, half the k > 1 steps at two resolutions); then the
# validation F1 of every 100th checkpoint (bench/reader_curve.py -> bench/results/reader_curve.json/png).
# On a fresh machine without runs/: `latentwire export-state runs/token_reader <dir>` on the old one, commit
# <dir>, and add train.continue_from=<dir> to stage 2 here.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
start=$(date +%s)
latentwire train --config configs/token_reader.yaml loss.objective=continuation train.steps=100 \
    train.out_dir=runs/token_reader_cont --quiet
latentwire train --config configs/token_reader.yaml train.init_from=runs/token_reader_cont --quiet "$@"
echo "train wall time: $(( $(date +%s) - start )) s"
python bench/reader_curve.py --run runs/token_reader --config configs/token_reader.yaml --n 100 --every 100
echo "total wall time: $(( $(date +%s) - start )) s"
