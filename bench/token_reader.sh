#!/usr/bin/env bash
# Issue 18's training of the lossless token reader on the default pair, both stages, then its curve.
#   bash bench/token_reader.sh            (rerun after a kill: every stage resumes where it stopped)
# Stage 1: continuation of training-split spans (unlabelled); stage 2: context-only QA from stage 1 (1,000
# steps of batch 8, k drawn per step from encoder.ks, half the k > 1 steps at two resolutions); then the
# validation F1 of every 100th checkpoint (bench/reader_curve.py -> bench/results/reader_curve.json/png).
# On a fresh machine without runs/: `latentwire export-state runs/token_reader <dir>` on the old one, commit
# <dir>, then `CONTINUE_FROM=<dir> bash bench/token_reader.sh` (stage 1 is skipped; stage 2 goes on from the
# exported step).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
start=$(date +%s)
if [ -n "${CONTINUE_FROM:-}" ]; then
  latentwire train --config configs/token_reader.yaml train.continue_from="$CONTINUE_FROM" --quiet "$@"
else
  latentwire train --config configs/token_reader.yaml loss.objective=continuation train.steps=100 \
      train.out_dir=runs/token_reader_cont --quiet
  latentwire train --config configs/token_reader.yaml train.init_from=runs/token_reader_cont --quiet "$@"
fi
echo "train wall time: $(( $(date +%s) - start )) s"
init=$([ -n "${CONTINUE_FROM:-}" ] || echo "--init runs/token_reader_cont")   # stage 1's weights: step 0
python bench/reader_curve.py --run runs/token_reader --config configs/token_reader.yaml --n 100 --every 100 $init
echo "total wall time: $(( $(date +%s) - start )) s"
