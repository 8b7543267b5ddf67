"""Name -> class registries. Strings become classes once, at build time; after that only polymorphism."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any


class ConfigError(ValueError):
    """A user-facing configuration or input error. Its message is one actionable line."""


class Registry(dict):
    """A dict of name -> factory with a decorator to fill it and a build() that fails with a readable message."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[Any], Any]:
        def add(factory: Any) -> Any:
            if name in self:
                raise KeyError(f"{self.kind} '{name}' is registered twice")
            self[name] = factory
            return factory

        return add

    def get_factory(self, name: str) -> Any:
        if name not in self:
            hint = difflib.get_close_matches(name, list(self), n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise ConfigError(f"unknown {self.kind} '{name}'{suggestion}; choose one of: {', '.join(sorted(self))}")
        return self[name]

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.get_factory(name)(*args, **kwargs)


SCHEDULES = Registry("schedule")
PROCESSES = Registry("process")
OBJECTIVES = Registry("objective")
SAMPLERS = Registry("sampler")
CACHES = Registry("cache policy")
SOURCES = Registry("data source")
# strategies: small classes a string option becomes once, when its owner is built
TIME_SAMPLERS = Registry("time_sampler")        # objectives/time_sampling.py
REMASKING = Registry("remasking rule")          # sample/confidence.py
FINAL_RULES = Registry("final rule")            # sample/base.py
ESTIMATORS = Registry("estimator")              # eval/estimators.py
