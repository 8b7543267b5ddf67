#!/usr/bin/env bash
# GPU readiness in one run (at most 8 minutes on one GPU): flash-attn vs SDPA logits, bf16 vs fp32 losses, compiled
# training throughput and MFU of the base config at L=1024, V=50257 (masked, SEDD, AR), sampling with and without
# the dKV cache. Writes OUT_DIR/gpu_check.json (rewritten after every check; a failed check records its error).
#   bash scripts/gpu_check.sh OUT_DIR              # on the GPU machine
#   bash scripts/gpu_check.sh OUT_DIR --dry-run    # tiny sizes on the CPU, seconds (CI smoke test)
# Without CUDA (and without --dry-run) it prints "no CUDA device: nothing to check (use --dry-run for the CPU smoke
# test)" at once and exits 0: nothing was checked, nothing failed. A check that cannot run prints "skipped (why)".
# Extra flags go to scripts/gpu_check.py (e.g. --batch 32). DLM_PYTHON overrides the interpreter.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:?usage: bash scripts/gpu_check.sh OUT_DIR [--dry-run] [--batch N]}"
shift
PY="${DLM_PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
LIMIT="${DLM_GPU_CHECK_SECONDS:-480}"
timeout --signal=TERM --kill-after=10 "$LIMIT" "$PY" scripts/gpu_check.py --out-dir "$OUT" "$@"
status=$?
[ "$status" -eq 124 ] && echo "gpu_check: stopped at the ${LIMIT}s limit; $OUT holds the checks that finished" >&2
exit "$status"
