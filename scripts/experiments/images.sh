#!/usr/bin/env bash
# Images as VQ token streams on MNIST, end to end: codec -> codes -> one captioned model per family -> evaluation.
#   bash scripts/experiments/images.sh [--publish]         # the full protocol (defaults below: ~1 h of training per
#                                                          # model on 2 idle cores, 5,000 samples per CFG scale)
#   CODEC_STEPS=1000 MDLM_STEPS=600 OTHER_STEPS=150 NUM_SAMPLES=500 bash scripts/experiments/images.sh   # a quick pass
# Each stage is skipped when its output exists, so a run can be resumed or extended family by family.
# Results: runs/vq_mnist/metrics.json, eval_results/mnist_vq_<family>/images.json (+ PNG grids), and the table
# runs/images_mnist.json (scripts/experiments/image_table.py); --publish writes the table to benchmarks/ instead.
set -euo pipefail
cd "$(dirname "$0")/../.."
TABLE=runs/images_mnist.json
if [ "${1:-}" = --publish ]; then TABLE=benchmarks/images_mnist.json; shift; fi
[ $# -eq 0 ] || { echo "usage: bash scripts/experiments/images.sh [--publish]" >&2; exit 2; }
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
DLM="${DLM:-.venv/bin/dlm}"
CODEC_STEPS="${CODEC_STEPS:-3000}"
MDLM_STEPS="${MDLM_STEPS:-6000}"
OTHER_STEPS="${OTHER_STEPS:-6000}"
NUM_SAMPLES="${NUM_SAMPLES:-5000}"
OTHER_SAMPLES="${OTHER_SAMPLES:-$NUM_SAMPLES}"
CFG_SCALES="${CFG_SCALES:-0,0.5,1,2,3}"
FAMILIES="${FAMILIES:-mdlm ar udlm sedd}"
CODEC=runs/vq_mnist

if [ ! -f "$CODEC/final/model.safetensors" ]; then
  $DLM vq train --data mnist --codebook 256 --downsample 4 --hidden 32 --batch-size 64 --steps "$CODEC_STEPS" \
    --save-every 250 --out "$CODEC" --no-progress
fi
for split in train test; do
  [ -f "$CODEC/final/codes/mnist-$split.safetensors" ] || $DLM vq encode --codec "$CODEC/final" --data mnist --split "$split"
done
for family in $FAMILIES; do
  steps=$OTHER_STEPS samples=$OTHER_SAMPLES
  if [ "$family" = mdlm ]; then steps=$MDLM_STEPS samples=$NUM_SAMPLES; fi
  run=runs/mnist_vq_$family
  if [ ! -f "$run/final/model.safetensors" ]; then
    $DLM train --config "configs/runs/mnist_vq_$family.yaml" "train.steps=$steps" \
      "train.warmup_steps=$(( steps < 1000 ? steps / 10 : 100 ))" train.progress=false
  fi
  out=eval_results/mnist_vq_$family
  [ -f "$out/images.json" ] || $DLM eval images --checkpoint "$run/final" --out "$out" --num-samples "$samples" \
    --cfg-scales "$CFG_SCALES" --classifier eval_results/mnist_classifier
done
.venv/bin/python -m scripts.experiments.image_table eval_results/mnist_vq_* --codec "$CODEC/metrics.json" \
  --out "$TABLE"
