#!/usr/bin/env bash
# Issue 18: one receiver's layer-8 k = 2 reader trained on alone (train.readers), with the learned pool of its
# layer-8 states (encoder.layer_pool=mlp_relative, starting as their mean) and, as the control, with the plain
# mean; both from the same joint checkpoint (INIT), the same recipe and steps. Every other receiver is loaded
# (its tokenizer shapes the shared vocabulary, so the packets are the joint run's) but neither read nor changed.
# Then each run's k = 2 validation F1 (context-only, N questions) at the steps in EVAL_STEPS, this receiver only.
# Resumable after a kill: rerun the same line (a finished run or reading is not redone).
#   READER=smollm2 INIT=runs/token_reader_k2_L8/checkpoints/step-000300 STEPS=200 bash bench/layer_pool.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
READER=${READER:-smollm2}
INIT=${INIT:-bench/state/token_reader_k2_L8_s300}
STEPS=${STEPS:-200}
N=${N:-500}
EVAL_STEPS=${EVAL_STEPS:-"100 $STEPS"}
declare -A MODEL=([smollm2]=smollm2-135m [qwen]=qwen2.5-coder-0.5b)
for POOL in mlp_relative mean; do
  OUT=runs/layer_pool/${READER}_${POOL}
  FRESH=()
  [ "$POOL" = mean ] || FRESH=("train.init_fresh=[adapters.smollm2.reader.layer_merges,adapters.qwen.reader.layer_merges]")
  latentwire train --config configs/token_reader.yaml "train.readers=[$READER]" train.init_from="$INIT" \
      "${FRESH[@]}" encoder.merge=mlp_relative encoder.merge_layer=8 encoder.layer_pool="$POOL" \
      loss.aux_objective=reconstruction loss.aux_share=0.5 "loss.aux_ks=[2]" "loss.ks=[2]" encoder.focus_share=0 \
      train.steps="$STEPS" train.save_every=25 train.log_every=5 train.out_dir="$OUT" --quiet
  for STEP in $EVAL_STEPS; do
    READ=$OUT/eval_s$STEP
    [ -f "$READ/metrics.json" ] && continue
    latentwire eval --config configs/token_reader.yaml checkpoint="$(printf '%s/checkpoints/step-%06d' "$OUT" "$STEP")" \
        receivers="${MODEL[$READER]}" data.n="$N" 'eval.methods=[latent_k]' 'eval.ks=[2]' eval.shuffle_test=false \
        eval.shuffled_f1=false eval.out_dir="$READ" --quiet
  done
done
