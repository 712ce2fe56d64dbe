#!/usr/bin/env bash
# Issue 18's ablation: does keeping reconstruction during QA stop the token reader unlearning merged reading?
#   bash bench/token_reader_mix.sh            (rerun after a kill: every stage resumes where it stopped)
#   INIT=runs/token_reader_mix OUT=runs/token_reader_mix2 STEPS=200 KS="1 2 4" EVERY=100 \
#       CURVE=runs/reader-curve-mix2 bash bench/token_reader_mix.sh
#                                             (the mix continued from its own end, curve at k = 1, 2, 4)
#   INIT=bench/state/token_reader OUT=runs/token_reader_mixr STEPS=300 AUX_KS=2,3,4 KS="1 2 4" \
#       CURVE=runs/reader-curve-mixr bash bench/token_reader_mix.sh train.save_every=25 train.log_every=5
#                                             (from the committed step-1000 state, no reconstruction stage:
#                                             aux steps read at k in AUX_KS; extra arguments go to the train)
# bench/token_reader_recon.sh showed reconstruction makes k = 2 positions readable and the QA steps after it
# undo part of that. From the same reconstruction stage (runs/token_reader_recon), STEPS steps in which a
# share AUX_SHARE of the steps are reconstruction (loss.aux_objective, with its own prompt and span items)
# and the rest the QA of bench/token_reader.sh; then its validation F1 at k = 2 and 4 (n = 100) beside the
# QA-only stage Q of that ablation at equal steps (runs/token_reader_recon_qa, into runs/reader-curve-mix).
# Needs runs/token_reader_recon (bench/token_reader_recon.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
STEPS=${STEPS:-150}
AUX_SHARE=${AUX_SHARE:-0.5}
INIT=${INIT:-runs/token_reader_recon}
OUT=${OUT:-runs/token_reader_mix}
KS=${KS:-2 4}
EVERY=${EVERY:-$STEPS}
CURVE=${CURVE:-runs/reader-curve-mix}
AUX_KS=${AUX_KS:-}
start=$(date +%s)
latentwire train --config configs/token_reader.yaml train.steps="$STEPS" train.init_from="$INIT" \
    loss.aux_objective=reconstruction loss.aux_share="$AUX_SHARE" train.out_dir="$OUT" \
    ${AUX_KS:+"loss.aux_ks=[$AUX_KS]"} "$@" --quiet
echo "train wall time: $(( $(date +%s) - start )) s"
# shellcheck disable=SC2086
python bench/reader_curve.py --run "$OUT" --config configs/token_reader.yaml --n 100 \
    --every "$EVERY" --ks $KS --methods latent_k --init "$INIT" --runs "$CURVE" \
    --results "$CURVE/results"
echo "total wall time: $(( $(date +%s) - start )) s"
