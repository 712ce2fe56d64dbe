#!/usr/bin/env bash
# Issue 18: the layer-8 k = 2 reader trained on the question-aware reading itself. From the committed state
# (INIT, bench/state/token_reader_k2_L8), STEPS steps at k = 2 merged from layer 8, a SHARE of them on
# loss.aux_objective=qa_selected (the latent of the sentence the question-aware sender selects, the packet the
# latent_selected rows read; questions whose answer is not in it skipped), the rest context-only QA. Then two
# curves on the first 100 validation questions, the start (INIT, at its step INIT_STEP) included:
#   question-aware: latent_selected at k = 2 within half the one-sentence peer's positions (the issue's bar);
#   context-only: latent_k at k = 2 (what the stage costs the context-only reading).
#   bash bench/question_aware_stage.sh          (rerun after a kill: each stage resumes where it stopped)
# A step costs about 40 s in float32 on 2 cores, about 12 s in bfloat16 (AVX512-BF16).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
INIT=${INIT:-bench/state/token_reader_k2_L8}
INIT_STEP=${INIT_STEP:-0}
STEPS=${STEPS:-100}
SHARE=${SHARE:-0.5}
RUN=runs/token_reader_qa_L8
latentwire train --config configs/token_reader.yaml train.init_from="$INIT" encoder.merge=mlp_relative \
    encoder.merge_layer=8 loss.aux_objective=qa_selected loss.aux_share="$SHARE" "loss.aux_ks=[2]" "loss.ks=[2]" \
    encoder.focus_share=0 train.steps="$STEPS" train.save_every=25 train.log_every=5 train.out_dir=$RUN --quiet
python bench/reader_curve.py --run $RUN --config configs/token_reader.yaml --n 100 --every "${EVERY:-25}" --ks 2 \
    --methods latent_selected --regime question_aware --set eval.max_position_share=0.5 \
    --init "$INIT" --init-step "$INIT_STEP" --runs runs/reader-curve-qa_L8 --results runs/reader-curve-qa_L8/results
python bench/reader_curve.py --run $RUN --config configs/token_reader.yaml --n 100 --every "${EVERY:-25}" --ks 2 \
    --methods latent_k --init "$INIT" --init-step "$INIT_STEP" --runs runs/reader-curve-qa_L8_context \
    --results runs/reader-curve-qa_L8_context/results
