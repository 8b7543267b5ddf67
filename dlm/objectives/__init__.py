"""Parameterizations and losses, one per file, registered in OBJECTIVES; each owns its family's policy (base.py).

Every module of this package is imported here, so a new objective is one file.
"""

import importlib
import pkgutil

from dlm.objectives.autoregressive import AutoregressiveObjective
from dlm.objectives.base import AttentionPattern, Objective
from dlm.objectives.masked_elbo import MaskedELBO
from dlm.objectives.mean_elbo import MeanELBO
from dlm.objectives.radd import RADD
from dlm.objectives.score_entropy import ScoreEntropy
from dlm.objectives.uniform_elbo import UniformELBO
from dlm.utils.deprecation import renamed

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")  # fills OBJECTIVES with every objective file

__all__ = ["AttentionPattern", "AutoregressiveObjective", "MaskedELBO", "MeanELBO", "Objective", "RADD",
           "ScoreEntropy", "UniformELBO"]


__getattr__ = renamed(__name__, {"Autoregressive": ("AutoregressiveObjective", AutoregressiveObjective)})
