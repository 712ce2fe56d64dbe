#!/usr/bin/env bash
# Issue 18: one receiver's layer-8 k = 2 reader trained alone with a learned pool of its layer-8 states
# (encoder.layer_pool=mlp_relative, starting as their mean) whose MLP is WIDTHS wide (encoder.pool_hidden; 128 is
# the layer_pool.sh run's), each from the same mean-pool checkpoint (INIT), the same recipe, steps and draws.
# Then each run's k = 2 validation F1 (context-only, N questions) at the steps in EVAL_STEPS, this receiver only.
# Resumable after a kill: rerun the same line (a finished run or reading is not redone).
#   READER=smollm2 STEPS=200 bash bench/wide_pool.sh
source "$(dirname "$0")/one_reader.sh"
INIT=${INIT:-bench/state/token_reader_k2_L8_s300}
WIDTHS=${WIDTHS:-"1024 128"}
EVAL_STEPS=${EVAL_STEPS:-"100 $STEPS"}
for WIDTH in $WIDTHS; do
  OUT=runs/wide_pool/${READER}_h${WIDTH}
  train_k "$OUT" "train.init_fresh=[adapters.smollm2.reader.layer_merges,adapters.qwen.reader.layer_merges]" \
      encoder.layer_pool=mlp_relative encoder.pool_hidden="$WIDTH" train.log_every=5
  for STEP in $EVAL_STEPS; do read_k "$OUT" "$STEP"; done
done
