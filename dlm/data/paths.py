"""Where data lives: the bundled corpus inside the package and the local data dir for the larger named sources."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
DATA_DIR_ENV = "DLM_DATA_DIR"


def data_dir() -> Path:
    """The local data dir: $DLM_DATA_DIR if set, else ``../shared/data`` next to the repo root (read at call time)."""
    env = os.environ.get(DATA_DIR_ENV, "")
    return Path(env).expanduser() if env else REPO_ROOT.parent / "shared" / "data"
