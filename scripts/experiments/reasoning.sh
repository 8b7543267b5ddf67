#!/usr/bin/env bash
# Reasoning experiment (dlm/tasks): masked, uniform, SEDD and AR on one backbone and one token budget per task ->
# runs/reasoning/reasoning.{json,png} (accuracy vs training tokens); --publish writes benchmarks/reasoning.{json,png}.
#   bash scripts/experiments/reasoning.sh                                   # the default protocol (hours on a CPU)
#   bash scripts/experiments/reasoning.sh --tasks sudoku4x4 --families mdlm,ar --milestones 200,400,800
#   bash scripts/experiments/reasoning.sh --tasks sudoku9x9 --families mdlm,ar --milestones 5000,10000,20000 \
#       --overrides "model.d_model=256 model.n_layers=6 model.n_heads=8"     # the MGDM-scale run (GPU)
# Every flag goes to scripts/experiments/reasoning.py (see --help). Runs at low priority, one thread per process.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
exec nice -n 10 .venv/bin/python -m scripts.experiments.reasoning "$@"
