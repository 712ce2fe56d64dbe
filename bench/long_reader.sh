#!/usr/bin/env bash
# Issue 18, item 4: one receiver's layer-8 reader at K tokens a position (2 unless K is set) trained alone for
# STEPS steps with QA on 3 steps in 4 (drawn per step from train.seed: at seed 0, STEPS=1365 holds 1,000 QA steps
# of batch 8, 1333 only 976; the rest reconstruction of 64-token spans), from INIT, then its
# curve: the validation F1 at K (context-only, CURVE_N questions, this receiver only) every EVERY steps
# (bench/reader_curve.py -> bench/results/long_reader/<reader>[_k<K>]/reader_curve.json/png), and the last step's
# on N (500). Runs at K = 2 go to runs/long_reader/<reader>, others to runs/long_reader/<reader>_k<K>.
# Overrides after the line's variables go to the training (e.g. encoder.pool_hidden=1024).
#   READER=smollm2 INIT=bench/state/token_reader_k2_L8_pool STEPS=1365 bash bench/long_reader.sh [OVERRIDE ...]
# Resumable after a kill: rerun the same line (the run resumes from its newest checkpoint, a reading done is not
# redone). On a fresh machine without runs/: export its newest checkpoint on the old one
# (`latentwire export-state runs/long_reader/<reader>[_k<K>]/checkpoints/step-<N> <dir> --ks <K>`: the K merges
# and pools alone, a few MB; commit <dir>), then rerun the line with CONTINUE_FROM=<dir> and encoder.ks=[<K>]
# among the overrides: the run goes on from the exported step with its weights and schedule (Adam's moments start
# again).
# Qwen's run of bench/RESULTS.md starts from SmolLM2's finished reader (so its checkpoints hold both new readers):
#   latentwire export-state runs/long_reader/smollm2/checkpoints/step-001365 runs/long_reader/smollm2_s1365_state --ks 2
#   READER=qwen INIT=runs/long_reader/smollm2_s1365_state STEPS=1365 bash bench/long_reader.sh \
#       encoder.pool_hidden=1024 'encoder.ks=[2]'
# and goes on from its committed state (the step it reached; both readers) on a fresh machine so:
#   READER=qwen CONTINUE_FROM=bench/state/token_reader_k2_L8_long STEPS=1365 bash bench/long_reader.sh \
#       encoder.pool_hidden=1024 'encoder.ks=[2]'
# A k = 4 reader from the k = 2 readers (their LoRA and k = 2 pools; the k = 4 merge and pool start as the mean;
# the curve's step 0 is that start, written to runs/long_reader/<reader>_k4_start by train.steps=0):
#   FRESH=adapters.smollm2.reader.merges.4,adapters.smollm2.reader.layer_merges.4
#   FRESH=$FRESH,adapters.qwen.reader.merges.4,adapters.qwen.reader.layer_merges.4
#   READER=smollm2 K=4 INIT=bench/state/token_reader_k2_L8_long STEPS=1365 bash bench/long_reader.sh \
#       encoder.pool_hidden=1024 'encoder.ks=[2,4]' "train.init_fresh=[$FRESH]"
source "$(dirname "$0")/one_reader.sh"
INIT=${INIT:-bench/state/token_reader_k2_L8_pool}
EVERY=${EVERY:-250}
CURVE_N=${CURVE_N:-200}
NAME=$READER
[ "$K" = 2 ] || NAME=${READER}_k$K
OUT=runs/long_reader/$NAME
POOL=(encoder.layer_pool=mlp_relative loss.aux_share=0.25 train.log_every=10 "$@")
train_k "$OUT" "${POOL[@]}"
START=(--init "$INIT")
if [ -n "${CONTINUE_FROM:-}" ]; then   # the curve keeps the steps read on the machine before (its committed JSON)
  START=(--init "$CONTINUE_FROM" --init-step "$(python -c "import json,sys; print(json.load(open(sys.argv[1]))['step'])" \
      "$CONTINUE_FROM/state.json")" --keep-earlier)
elif [ "$K" != 2 ]; then   # INIT reads k = 2 alone: step 0 is the run's start as the trainer builds it (k = K fresh)
  (STEPS=0; train_k "${OUT}_start" "${POOL[@]}")
  START=(--init "${OUT}_start")
fi
python bench/reader_curve.py --run "$OUT" --config configs/token_reader.yaml --n "$CURVE_N" --every "$EVERY" "${START[@]}" \
    --ks "$K" --methods latent_k --no-text --set receivers="${MODEL[$READER]}" --runs "runs/reader-curve-long-$NAME" \
    --results "bench/results/long_reader/$NAME"
read_k "$OUT" "$STEPS"
