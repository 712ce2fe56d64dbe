#!/usr/bin/env bash
# Issue 18's ablation: does reconstruction teach the token reader to read merged positions (k >= 2), which
# 1,000 QA steps of bench/token_reader.sh did not (uniform k >= 2 steps kept bits_own ~ bits_shuffled)?
#   bash bench/token_reader_recon.sh            (rerun after a kill: every stage resumes where it stopped)
# Stage R: from the QA reader (runs/token_reader), RECON_STEPS steps of reconstruction of 64-token training-
# split spans read at k in {2, 3, 4} uniformly ("Repeat the text word for word."; every span token a target,
# so a step gives ~64 targets an example where QA gives ~3); its log's bits_own against bits_shuffled says
# whether a merged position carries its tokens. Stage Q: QA_STEPS steps of the same QA training as
# bench/token_reader.sh from stage R; then the validation F1 of both against the QA reader it started from
# (bench/reader_curve.py, n = 100, k = 2 and 4, into runs/reader-curve-recon).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
RECON_STEPS=${RECON_STEPS:-150}
QA_STEPS=${QA_STEPS:-150}
start=$(date +%s)
latentwire train --config configs/token_reader.yaml loss.objective=reconstruction "encoder.ks=[2,3,4]" \
    encoder.focus=0 train.steps="$RECON_STEPS" train.init_from=runs/token_reader \
    train.out_dir=runs/token_reader_recon train.log_every=10 --quiet
echo "stage R wall time: $(( $(date +%s) - start )) s"
latentwire train --config configs/token_reader.yaml train.steps="$QA_STEPS" train.init_from=runs/token_reader_recon \
    train.out_dir=runs/token_reader_recon_qa --quiet
echo "stage Q wall time: $(( $(date +%s) - start )) s"
python bench/reader_curve.py --run runs/token_reader_recon_qa --config configs/token_reader.yaml --n 100 \
    --every "$QA_STEPS" --ks 2 4 --methods latent_k --init runs/token_reader --runs runs/reader-curve-recon \
    --results runs/reader-curve-recon/results
echo "total wall time: $(( $(date +%s) - start )) s"
