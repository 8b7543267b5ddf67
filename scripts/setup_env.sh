#!/usr/bin/env bash
# Create (or reuse) .venv with dlm installed in editable mode. Idempotent; safe to call from other scripts.
# Where no NVIDIA GPU is visible, the CPU torch wheel is installed first, so pip never pulls a multi-GB CUDA build.
# Overrides: DLM_VENV (path), DLM_TORCH_SPEC (e.g. "torch==2.13.0"), DLM_EXTRAS (default "dev,eval,image").
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${DLM_VENV:-.venv}"
EXTRAS="${DLM_EXTRAS:-dev,eval,image}"
STAMP="$VENV/.dlm-installed"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
if [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ]; then
  exit 0
fi
"$PY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    "$PY" -m pip install -q "${DLM_TORCH_SPEC:-torch>=2.4}" 2>&1 | grep -v "^WARNING: Location" || true
  else  # the CPU index first (PyPI's Linux wheel is the multi-GB CUDA build), then the default index / local mirror
    "$PY" -m pip install -q --timeout 30 --retries 1 "${DLM_TORCH_SPEC:-torch==2.13.0}" \
      --index-url https://download.pytorch.org/whl/cpu 2>&1 | grep -v -E "^WARNING: (Location|Retrying)" || true
    "$PY" -c "import torch" 2>/dev/null \
      || "$PY" -m pip install -q "${DLM_TORCH_SPEC:-torch==2.13.0}" 2>&1 | grep -v "^WARNING: Location" || true
  fi
fi
echo "setting up $VENV (dlm[${EXTRAS}]); pip output goes to $VENV/install.log"
"$PY" -m pip install -q -e ".[${EXTRAS}]" >"$VENV/install.log" 2>&1 || { cat "$VENV/install.log"; exit 1; }
touch "$STAMP"
