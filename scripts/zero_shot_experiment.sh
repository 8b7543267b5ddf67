#!/usr/bin/env bash
# Issue-4 experiment: train the small masked (MDLM), uniform (UDLM), score-entropy (SEDD) and autoregressive models on
# the same tokens (bundled Tiny Shakespeare, char-level, STEPS x 32 x 128 tokens each), then the zero-shot table on
# PTB, WikiText-2, WikiText-103 and LM1B with standard errors and the diffusion/AR ratio.
# CPU budget: STEPS=250 (1.0M tokens per model), ~2-3 min per model on 2 idle cores. Usage: bash scripts/zero_shot_experiment.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
STEPS="${STEPS:-250}"
OUT="${OUT:-runs/zero_shot}"
for family in mdlm udlm sedd ar; do
  rm -rf "$OUT/$family"
  .venv/bin/dlm train --config "configs/runs/shakespeare_$family.yaml" "train.steps=$STEPS" "train.out_dir=$OUT/$family" \
    train.progress=false train.eval_every=0 train.save_every=0
done
.venv/bin/python scripts/bench_zero_shot.py "$OUT"/{mdlm,udlm,sedd,ar}/final --max-blocks "${MAX_BLOCKS:-256}" --n-t 4 \
  --out benchmarks/zero_shot.json | tee benchmarks/zero_shot.txt
