#!/usr/bin/env bash
# Issue 18, item 3 on the trained reader: which merge lets a position be read at k = 2-4? From the committed
# step-1000 reader (bench/state/token_reader, merge mlp), STEPS steps of the mix of bench/token_reader_mix.sh
# (half the steps reconstruction read at k in {2, 3, 4}, the rest QA; same seed, so every step draws the same
# task and k as runs/token_reader_mixr and runs/token_reader_lora7), once per merge:
#   mlp_relative  the loaded MLP kept, its output now in units of the group mean's RMS
#   weighted      a per-place, per-dimension weight, started as the group mean (train.init_fresh=[adapters.])
# (mlp_relative for 175 steps, weighted for 100: the session's time), then each run's validation F1 at
# k = 1-4 (n = 100) at steps 100 and its last, and the merged positions' spread.
#   bash bench/merge_compare.sh            (rerun after a kill: each stage resumes where it stopped)
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
REL_STEPS=${REL_STEPS:-175}
WEIGHTED_STEPS=${WEIGHTED_STEPS:-100}
MIX=(train.init_from=bench/state/token_reader loss.aux_objective=reconstruction
     loss.aux_share=0.5 "loss.aux_ks=[2,3,4]" train.save_every=25 train.log_every=5)
latentwire train --config configs/token_reader.yaml "${MIX[@]}" train.steps="$REL_STEPS" encoder.merge=mlp_relative \
    train.out_dir=runs/token_reader_rel --quiet
latentwire train --config configs/token_reader.yaml "${MIX[@]}" train.steps="$WEIGHTED_STEPS" encoder.merge=weighted "train.init_fresh=[adapters.]" \
    train.out_dir=runs/token_reader_weighted --quiet
for run in rel weighted; do
  python bench/reader_curve.py --run runs/token_reader_$run --config configs/token_reader.yaml --n 100 \
      --every 100 --ks 1 2 3 4 --methods latent_k --runs runs/reader-curve-$run --results runs/reader-curve-$run/results
done
python bench/merge_spread.py bench/state/token_reader_mixr runs/token_reader_rel runs/token_reader_weighted --n 8 \
    --results bench/results/merge_spread_compare.json
