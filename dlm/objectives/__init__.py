"""Parameterizations and losses, one per file, registered in OBJECTIVES."""

from dlm.objectives.autoregressive import Autoregressive
from dlm.objectives.base import Objective
from dlm.objectives.masked_elbo import MaskedELBO
from dlm.objectives.radd import RADD
from dlm.objectives.score_entropy import ScoreEntropy
from dlm.objectives.uniform_elbo import UniformELBO

__all__ = ["Autoregressive", "MaskedELBO", "Objective", "RADD", "ScoreEntropy", "UniformELBO"]
