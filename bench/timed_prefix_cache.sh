#!/usr/bin/env bash
# Receiver time with each receiver's prompt prefix (chat header and instruction, the same ids for every example
# and method) in a KV cache computed once, as a server keeps a fixed system prompt's: every context-only row
# of the Pareto benchmark timed again that way, one thread, alone on the machine, every answer reused.
#   bash bench/timed_prefix_cache.sh
# Needs the answers of runs/bench-pareto (the peers, issue 17) and runs/bench-pareto-token_reader (the token
# reader, the two commands in bench/RESULTS.md). lm_coded is left out: its decoding (about 11 s a question)
# keeps it off every receiver-time front, and it can dominate no row that answers in less.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
timed=(--threads 1 --prefix-cache --regimes context_only)
python bench/pareto.py --config configs/collapse_pairs_qa.yaml --checkpoint default "${timed[@]}" \
    --methods text no_context context_budget select_lexical select_minilm llmlingua \
    --runs runs/bench-pareto-timed-pc --results runs/bench-pareto-timed-pc/report
python bench/pareto.py --config configs/token_reader.yaml --checkpoint runs/token_reader "${timed[@]}" \
    --latent latent_k latent_focus --methods text --ks 1 2 4 --runs runs/bench-pareto-token_reader-timed-pc \
    --answers-from runs/bench-pareto-token_reader --results runs/bench-pareto-token_reader-timed-pc/report
python bench/pareto.py --report --runs runs/bench-pareto-timed-pc --latent-runs runs/bench-pareto-token_reader-timed-pc \
    --results bench/results/pareto_prefix_cache
