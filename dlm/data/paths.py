"""Where data lives: the bundled corpus inside the package and the local data dir for the larger named sources."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
DATA_DIR_ENV = "DLM_DATA_DIR"


def data_dir() -> Path:
    """The local data dir (read at call time): $DLM_DATA_DIR if set, else ``../shared/data`` next to the checkout,
    else ``../shared/data`` from the working directory when only that one exists (an installed, non-editable dlm
    run from a checkout)."""
    env = os.environ.get(DATA_DIR_ENV, "")
    if env:
        return Path(env).expanduser()
    beside_checkout, beside_cwd = REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"
    return beside_cwd if not beside_checkout.is_dir() and beside_cwd.is_dir() else beside_checkout
