#!/usr/bin/env bash
# Issue 18, item 3: the learned MLP merge against the per-dimension weighted sum at equal steps (300 QA steps
# each from the same stage-1 weights, same seed, same k draws), then both read at k = 2 and 4 on 100
# validation questions (bench/reader_curve.py, one root per merge). Resumable: rerun after a kill.
#   bash bench/merge_ablation.sh          (needs runs/token_reader_cont from bench/token_reader.sh's stage 1)
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
for merge in mlp weighted; do
  latentwire train --config configs/token_reader.yaml encoder.merge=$merge train.steps=300 \
      train.init_from=runs/token_reader_cont train.out_dir=runs/merge_$merge --quiet
  python bench/reader_curve.py --run runs/merge_$merge --config configs/token_reader.yaml --n 100 --every 300 \
      --ks 2 4 --methods latent_k --runs runs/reader-curve-merge_$merge --results bench/results/merge_$merge
done
