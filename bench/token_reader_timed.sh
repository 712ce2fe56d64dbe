#!/usr/bin/env bash
# Issue 18's timing pass: the token reader's Pareto rows again in a fresh root, every answer reused from
# runs/bench-pareto-token_reader (made by the two commands in bench/RESULTS.md), each row timed alone on the
# machine at one thread, as the peers' timed pass was; then the report among the peers' timed rows.
#   bash bench/token_reader_timed.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
common=(--config configs/token_reader.yaml --checkpoint runs/token_reader --methods text
        --runs runs/bench-pareto-token_reader-timed --answers-from runs/bench-pareto-token_reader --ks 1 2 4
        --threads 1 --results runs/bench-pareto-token_reader-timed/report)
python bench/pareto.py "${common[@]}" --latent latent_k latent_focus --regimes context_only
python bench/pareto.py "${common[@]}" --latent latent_selected --regimes question_aware
python bench/pareto.py --report --peer-rows bench/results/pareto.json \
    --latent-runs runs/bench-pareto-token_reader-timed --results bench/results/pareto_token_reader
