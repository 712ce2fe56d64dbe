#!/usr/bin/env bash
# Issue 18: merging from a decoder layer (latentwire/adapters/layer_merge.py). The context's first L layers read
# it a token a position (a side pass); their states, pooled K to a position, replace the merged positions' at
# layer L. Three stages, each resumable after a kill (rerun the same line):
#   1. zero-shot: the mixed mlp_relative reader (INIT) read as trained (latent_k) and with the merge moved to
#      layer L (latent_deep), k = 2 and 4, text beside them, on the first 100 validation questions, 30 timed;
#   2. a reader trained so (encoder.merge_layer=L) from INIT: every step reads at K, half QA and half
#      reconstruction of 64-token spans (the recipe of bench/specialist.sh's first stage), STEPS steps;
#   3. its validation F1 at K against steps (its latent_k rows read from layer L, as it trained).
#   L=8 K=2 STEPS=100 bash bench/layer_merge.sh          ZERO_SHOT=0 skips stage 1
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
L=${L:-8}
K=${K:-2}
STEPS=${STEPS:-100}
INIT=${INIT:-bench/state/token_reader_rel}
if [ "${ZERO_SHOT:-1}" = 1 ]; then
  latentwire eval --config configs/token_reader.yaml checkpoint="$INIT" data.n=100 \
      'eval.methods=[text,latent_k,latent_deep]' 'eval.ks=[2,4]' eval.merge_layer="$L" eval.timing_n=30 \
      eval.joint=false eval.shuffle_test=false eval.shuffled_f1=false eval.out_dir=runs/layer_merge_zero_L$L
  cp runs/layer_merge_zero_L$L/metrics.json bench/results/layer_merge_zero_L$L.json
fi
latentwire train --config configs/token_reader.yaml train.init_from="$INIT" encoder.merge=mlp_relative \
    encoder.merge_layer="$L" loss.aux_objective=reconstruction loss.aux_share=0.5 "loss.aux_ks=[$K]" "loss.ks=[$K]" \
    encoder.focus_share=0 train.steps="$STEPS" train.save_every=25 train.log_every=10 \
    train.out_dir=runs/token_reader_k${K}_L$L --quiet
python bench/reader_curve.py --run runs/token_reader_k${K}_L$L --config configs/token_reader.yaml --n 100 \
    --every "${EVERY:-50}" --ks "$K" --methods latent_k --runs runs/reader-curve-k${K}_L$L \
    --results runs/reader-curve-k${K}_L$L/results
cp runs/reader-curve-k${K}_L$L/results/reader_curve.json bench/results/reader_curve_k${K}_L$L.json
cp runs/reader-curve-k${K}_L$L/results/reader_curve.png bench/results/reader_curve_k${K}_L$L.png
