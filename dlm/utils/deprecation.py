"""Old public names kept working for a while: a module's `__getattr__` that returns the renamed object with a
DeprecationWarning naming the new one."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any


def renamed(module: str, names: dict[str, tuple[str, Any]]) -> Callable[[str], Any]:
    """A module-level __getattr__ for `module`: names maps old name -> (new name, object).
        __getattr__ = renamed(__name__, {"Block": ("TransformerBlock", TransformerBlock)})"""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        new_name, target = names[name]
        warnings.warn(f"{module}.{name} is deprecated: use {new_name}", DeprecationWarning, stacklevel=2)
        return target

    return __getattr__
