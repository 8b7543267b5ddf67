#!/usr/bin/env bash
# Zero-shot experiment: train the small masked (MDLM), uniform (UDLM), score-entropy (SEDD) and autoregressive models
# on the same tokens (bundled Tiny Shakespeare, char-level, STEPS x 32 x 128 tokens each), then the zero-shot table on
# PTB, WikiText-2, WikiText-103 and LM1B with standard errors and the diffusion/AR ratio (needs ../shared/data).
# CPU budget: STEPS=250 (1.0M tokens per model), ~2-3 min per model on 2 idle cores.
#   bash scripts/experiments/zero_shot.sh              # results in $OUT/zero_shot.{json,txt} (OUT=runs/zero_shot)
#   bash scripts/experiments/zero_shot.sh --publish    # ... in benchmarks/zero_shot.{json,txt} (the shipped table)
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS="${STEPS:-250}"
OUT="${OUT:-runs/zero_shot}"
TABLE="$OUT/zero_shot"
if [ "${1:-}" = --publish ]; then TABLE=benchmarks/zero_shot; shift; fi
[ $# -eq 0 ] || { echo "usage: bash scripts/experiments/zero_shot.sh [--publish]" >&2; exit 2; }
bash scripts/setup_env.sh
for family in mdlm udlm sedd ar; do
  rm -rf "${OUT:?}/$family"
  .venv/bin/dlm train --config "configs/runs/shakespeare_$family.yaml" "train.steps=$STEPS" "train.out_dir=$OUT/$family" \
    train.progress=false train.eval_every=0 train.save_every=0
done
mkdir -p "$(dirname "$TABLE")"
.venv/bin/python -m scripts.bench.zero_shot "$OUT"/{mdlm,udlm,sedd,ar}/final --max-blocks "${MAX_BLOCKS:-256}" --n-t 4 \
  --out "$TABLE.json" | tee "$TABLE.txt"
