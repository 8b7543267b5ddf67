"""Noise removal at the last time eps (the sampler option `final`): how x0 is drawn from the posterior
p(x0^l | x_eps) once the reverse chain ends (FINAL_RULES: "sample" draws from it, "argmax" takes its mode)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor

from dlm.registry import FINAL_RULES
from dlm.utils.categorical import argmax_law


class FinalRule(ABC):
    """Noise removal at eps: the posterior p(x0^l | x_eps) (B, L, N) -> the law x0 is drawn from."""

    @abstractmethod
    def __call__(self, probs: Tensor) -> Tensor: ...


@FINAL_RULES.register("sample")
class SampleFinal(FinalRule):
    def __call__(self, probs):
        return probs


@FINAL_RULES.register("argmax")
class ArgmaxFinal(FinalRule):
    def __call__(self, probs):
        return argmax_law(probs)
