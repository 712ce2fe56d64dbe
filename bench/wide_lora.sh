#!/usr/bin/env bash
# Issue 18: one receiver's layer-8 k = 2 reader (learned layer pool) trained on alone with LoRA on every
# projection of its decoder layers (attention q, k, v, o and the MLP's gate, up, down) instead of q and v only;
# the new LoRA modules start at zero (train.init_new_lora), so the run starts from the loaded reader's reading.
# Its control is the same receiver trained as many steps further with q/v LoRA (bench/layer_pool.sh's recipe,
# e.g. runs/smol_pool_L8_stage2). Then the k = 2 validation F1 (context-only, N questions), this receiver only.
# Resumable after a kill: rerun the same line (a finished run or reading is not redone).
#   READER=smollm2 INIT=runs/qwen_pool_L8/checkpoints/step-000060 STEPS=200 bash bench/wide_lora.sh
source "$(dirname "$0")/one_reader.sh"
INIT=${INIT:-bench/state/token_reader_k2_L8_pool}
OUT=${OUT:-runs/lora_wide/$READER}
train_k "$OUT" train.init_new_lora=true \
    "features.lora.targets=[q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj]" encoder.layer_pool=mlp_relative \
    train.log_every=10
read_k "$OUT" "$STEPS"
