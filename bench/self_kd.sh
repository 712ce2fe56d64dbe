#!/usr/bin/env bash
# Issue 18: one receiver's layer-8 k = 2 reader (learned layer pool) trained on alone with self-distillation at
# weight W (loss.self_kd_weight): on each QA step the answer's distribution is also pulled (KL at tau = 2, top 32)
# toward the same reader reading the same packet at k = 1. W = 0 is the control: the same steps, seed and draws
# without it. Then the k = 2 validation F1 (context-only, N questions), this receiver only.
# Resumable after a kill: rerun the same line (a finished run or reading is not redone).
#   READER=smollm2 STEPS=100 W=0.25 bash bench/self_kd.sh        and W=0 for the control
source "$(dirname "$0")/one_reader.sh"
INIT=${INIT:-bench/state/token_reader_k2_L8_pool}
W=${W:-0.25}
OUT=${OUT:-runs/self_kd/${READER}_w$W}
train_k "$OUT" encoder.layer_pool=mlp_relative loss.self_kd_weight="$W" train.log_every=5
read_k "$OUT" "$STEPS"
