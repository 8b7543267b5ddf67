#!/usr/bin/env bash
# The main job: train a small masked diffusion LM (MDLM) on the bundled Tiny Shakespeare, report its validation
# perplexity bound, print samples and an infilling. ~8 minutes on 2 CPU cores. Extra args are config overrides,
# e.g. `bash scripts/quickstart.sh train.steps=200` for a 1-minute smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
DLM=.venv/bin/dlm
RUN=runs/shakespeare_mdlm
rm -rf "$RUN"  # a fresh run each time (training refuses to overwrite a run without --resume)

echo "== training (configs/runs/shakespeare_mdlm.yaml) =="
$DLM train --config configs/runs/shakespeare_mdlm.yaml "train.out_dir=$RUN" "$@"

echo "== samples (ancestral, 128 steps) =="
$DLM sample --checkpoint "$RUN/final" --sampler ancestral --steps 128 --num-samples 3 --length 192 --seed 0

echo "== infilling =="
$DLM infill --checkpoint "$RUN/final" --steps 64 --num-samples 3 --seed 0 \
  --text $'ROMEO:\nBut soft, what light <mask:24> breaks?\n'
