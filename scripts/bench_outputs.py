"""The output tail the benchmark and demo scripts share: OUT.json (meta + results) and OUT.png (their plot)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path


def write_outputs(out: str, payload: dict, plot: Callable[[Path], None]) -> None:
    """Write payload to OUT.json and plot(OUT.png), creating OUT's folder; print both paths."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(payload, indent=1))
    plot(path.with_suffix(".png"))
    print(f"wrote {path.with_suffix('.json')} and {path.with_suffix('.png')}")
