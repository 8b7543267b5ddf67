"""Sampler options: build a registered sampler from its name and options, also as the command line writes them
("confidence:threshold=0.9,block_size=32"), each value checked against the sampler's field."""

from __future__ import annotations

import dataclasses
from typing import Any

from dlm.registry import SAMPLERS, ConfigError


def get_sampler(name: str, **options) -> Any:  # a dlm.sample.base.Sampler (base imports this module)
    """Build a registered sampler by name with its options, e.g. get_sampler("confidence", block_size=32). The name
    may carry options as the command line writes them, "confidence:threshold=0.9,block_size=32" (";" separates
    them too, for lm-eval's comma-separated model_args); those override the keyword options."""
    name, _, spec = name.partition(":")
    factory = SAMPLERS.get_factory(name)
    known = {f.name: f.type for f in dataclasses.fields(factory)}
    written = parse_options(spec)
    options = {**options, **written}
    inner = getattr(factory, "forwards_options_to", None)  # a sampler running another one (block)
    if inner is not None:  # the options it does not own are the inner sampler's
        options[inner] = {**options.get(inner, {}), **{key: options.pop(key) for key in set(options) - set(known)}}
        written = {key: value for key, value in written.items() if key in known}
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"sampler '{name}' has no option {unknown[0]!r}; options: {', '.join(sorted(known))}")
    for key, value in written.items():
        if not _fits(value, str(known[key])):
            raise ConfigError(f"sampler '{name}': option {key} must be {known[key]}, got {value!r}")
    return factory(**options)


def parse_options(spec: str) -> dict[str, Any]:
    """"key=value,key=value" (or ";"-separated) -> {key: value}: integers, decimals, true / false and none become
    int / float / bool / None, anything else stays text."""
    options: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in spec.replace(";", ",").split(","))):
        key, eq, value = (part.strip() for part in item.partition("="))
        if not eq or not key:
            raise ConfigError(f"sampler option '{item}' must be key=value, e.g. confidence:threshold=0.9")
        options[key] = _option_value(value)
    return options


def _fits(value: Any, annotation: str) -> bool:
    """Whether a parsed option value fits its field's annotation ("float", "int", "str", "float | None", ...)."""
    kinds = {"bool": (bool,), "int": (int,), "float": (int, float), "str": (str,), "None": (type(None),)}
    accepted = tuple(kind for word in annotation.replace(" ", "").split("|") for kind in kinds.get(word, ()))
    return isinstance(value, accepted) and (isinstance(value, bool) == ("bool" in annotation) or value is None)


def _option_value(text: str) -> Any:
    words = {"true": True, "false": False, "none": None}
    if text.lower() in words:
        return words[text.lower()]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
