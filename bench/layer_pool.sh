#!/usr/bin/env bash
# Issue 18: one receiver's layer-8 k = 2 reader trained on alone (train.readers), with the learned pool of its
# layer-8 states (encoder.layer_pool=mlp_relative, starting as their mean) and, as the control, with the plain
# mean; both from the same joint checkpoint (INIT), the same recipe and steps. Every other receiver is loaded
# (its tokenizer shapes the shared vocabulary, so the packets are the joint run's) but neither read nor changed.
# Then each run's k = 2 validation F1 (context-only, N questions) at the steps in EVAL_STEPS, this receiver only.
# Resumable after a kill: rerun the same line (a finished run or reading is not redone).
#   READER=smollm2 INIT=runs/token_reader_k2_L8/checkpoints/step-000300 STEPS=200 bash bench/layer_pool.sh
source "$(dirname "$0")/one_reader.sh"
INIT=${INIT:-bench/state/token_reader_k2_L8_s300}
EVAL_STEPS=${EVAL_STEPS:-"100 $STEPS"}
for POOL in mlp_relative mean; do
  OUT=runs/layer_pool/${READER}_${POOL}
  FRESH=()
  [ "$POOL" = mean ] || FRESH=("train.init_fresh=[adapters.smollm2.reader.layer_merges,adapters.qwen.reader.layer_merges]")
  train_k "$OUT" "${FRESH[@]}" encoder.layer_pool="$POOL" train.log_every=5
  for STEP in $EVAL_STEPS; do read_k "$OUT" "$STEP"; done
done
