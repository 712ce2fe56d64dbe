# Sourced by the drivers that train one receiver's layer-8 reader alone (train.readers) at K tokens a position
# and read it (layer_pool.sh, wide_lora.sh, self_kd.sh, wide_pool.sh, long_reader.sh): the shared settings, the
# training and the reading. Not run on its own.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export HF_HUB_OFFLINE=1
READER=${READER:-smollm2}
K=${K:-2}
STEPS=${STEPS:-200}
N=${N:-500}
declare -A MODEL=([smollm2]=smollm2-135m [qwen]=qwen2.5-coder-0.5b)
if [ -z "${MODEL[$READER]+set}" ]; then
  echo "READER must be one of ${!MODEL[*]}, got '$READER'" >&2
  exit 2
fi
case "$K" in
  2|3|4) ;;
  *) echo "K (tokens a position the reader is trained and read at) must be 2, 3 or 4, got '$K'" >&2; exit 2 ;;
esac
# the recipe of the layer-8 k = 2 stage, at K: every step at K, half QA, half reconstruction of 64-token spans
K_RECIPE=(encoder.merge=mlp_relative encoder.merge_layer=8 loss.aux_objective=reconstruction loss.aux_share=0.5
          "loss.aux_ks=[$K]" "loss.ks=[$K]" encoder.focus_share=0)

# train_k OUT [OVERRIDE ...]: READER's reader alone from INIT (or, with CONTINUE_FROM set, going on from that
# exported state's step), STEPS steps of the K recipe and the overrides, a checkpoint every 25 steps, into
# OUT (a rerun resumes from OUT's newest checkpoint).
train_k() {
  local start=train.init_from="$INIT"
  [ -z "${CONTINUE_FROM:-}" ] || start=train.continue_from="$CONTINUE_FROM"
  latentwire train --config configs/token_reader.yaml "train.readers=[$READER]" "$start" \
      "${K_RECIPE[@]}" "${@:2}" train.steps="$STEPS" train.save_every=25 train.out_dir="$1" --quiet
}

# read_k RUN STEP: the validation F1 at K (context-only, N questions) of RUN's checkpoint at STEP, this
# receiver only, into RUN/eval_sSTEP (skipped where it is already there).
read_k() {
  local read=$1/eval_s$2
  [ -f "$read/metrics.json" ] && return 0
  latentwire eval --config configs/token_reader.yaml checkpoint="$(printf '%s/checkpoints/step-%06d' "$1" "$2")" \
      receivers="${MODEL[$READER]}" data.n="$N" 'eval.methods=[latent_k]' "eval.ks=[$K]" eval.shuffle_test=false \
      eval.shuffled_f1=false eval.out_dir="$read" --quiet
}
