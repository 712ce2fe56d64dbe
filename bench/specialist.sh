#!/usr/bin/env bash
# Issue 18: a reader specialised at one k, and the dense self-distillation of the states after the context.
# From the best mixed reader (bench/state/token_reader_rel: mlp_relative, step 175), STEPS steps in which every
# step reads at K (loss.ks / loss.aux_ks; every merge of encoder.ks is kept, so the state loads), half QA and half
# reconstruction of 64-token spans, uniform layouts only; once without and once with loss.self_states_weight
# (the hidden states at the question, anchor and answer positions read at K pulled toward the same reader's at
# k = 1). Same seed: every step draws the same task in both runs. Then each run's validation F1 at K (n = 100).
#   K=2 bash bench/specialist.sh           (rerun after a kill: each stage resumes where it stopped)
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
K=${K:-2}
STEPS=${STEPS:-150}
STATES_WEIGHT=${STATES_WEIGHT:-4}
INIT=${INIT:-bench/state/token_reader_rel}
RUN=(train.init_from="$INIT" encoder.merge=mlp_relative loss.aux_objective=reconstruction loss.aux_share=0.5
     "loss.aux_ks=[$K]" "loss.ks=[$K]" encoder.focus_share=0 train.steps="$STEPS" train.save_every=25
     train.log_every=5)
latentwire train --config configs/token_reader.yaml "${RUN[@]}" train.out_dir=runs/token_reader_k$K --quiet
latentwire train --config configs/token_reader.yaml "${RUN[@]}" loss.self_states_weight="$STATES_WEIGHT" \
    train.out_dir=runs/token_reader_k${K}_std$STATES_WEIGHT --quiet
for run in k$K k${K}_std$STATES_WEIGHT; do
  python bench/reader_curve.py --run runs/token_reader_$run --config configs/token_reader.yaml --n 100 \
      --every "${EVERY:-50}" --ks "$K" --methods latent_k --runs runs/reader-curve-$run --results runs/reader-curve-$run/results
done
