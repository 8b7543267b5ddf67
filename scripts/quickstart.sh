#!/usr/bin/env bash
# The main job: train a small masked diffusion LM (MDLM) on the bundled Tiny Shakespeare with an 8192-token BPE
# trained on it, report its validation perplexity bound, print samples with the share of their words that occur in
# the corpus, and an infilling. ~3 minutes on 2 idle CPU cores. Extra args are config overrides, e.g.
# `bash scripts/quickstart.sh train.steps=60` for a one-minute smoke run. `python -m scripts.bench.quickstart`
# runs it and records its time, bound and share of corpus words over more sample seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
DLM=.venv/bin/dlm
RUN=runs/shakespeare_mdlm_bpe8k
rm -rf "$RUN"  # a fresh run each time (training refuses to overwrite a run without --resume)

echo "== training (configs/runs/shakespeare_mdlm_bpe8k.yaml) =="
$DLM train --config configs/runs/shakespeare_mdlm_bpe8k.yaml "train.out_dir=$RUN" "$@"

echo "== samples (ancestral, 128 steps, nucleus top-p 0.9) =="
$DLM sample --checkpoint "$RUN/final" --sampler ancestral --steps 128 --top-p 0.9 --num-samples 3 --length 128 \
  --seed 0 --corpus-words

echo "== infilling =="
$DLM infill --checkpoint "$RUN/final" --steps 64 --num-samples 3 --seed 0 \
  --text $'ROMEO:\nBut soft, what light <mask:6> breaks?\n'
