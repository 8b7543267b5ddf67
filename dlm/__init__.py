"""dlm: discrete diffusion language models on one shared backbone.

Importing dlm has no side effects beyond filling its registries: after `import dlm` every registry of
dlm.registry (SCHEDULES, PROCESSES, OBJECTIVES, SAMPLERS, CACHES, SOURCES and the strategies) holds all its entries.
"""

import dlm.cache  # noqa: F401  (fills CACHES)
import dlm.data.sources  # noqa: F401  (fills SOURCES)
import dlm.eval.estimators  # noqa: F401  (fills ESTIMATORS)
import dlm.sample  # noqa: F401  (fills SAMPLERS, REMASKING, FINAL_RULES)
import dlm.tasks  # noqa: F401  (fills TASKS and the task:<name> SOURCES)
from dlm.config import RunConfig, load_config
from dlm.diffusion_lm import DiffusionLM
from dlm.image import source as _image_source  # noqa: F401  (registers the vq: / vqtext: data sources)
from dlm.process import Absorbing, Cosine, Geometric, Linear, LogLinear, Uniform
from dlm.registry import ConfigError
from dlm.types import LossOutput, Prediction, SpecialTokens, StepOutput

__all__ = [
    "Absorbing", "ConfigError", "Cosine", "DiffusionLM", "Geometric", "Linear", "LogLinear", "LossOutput",
    "Prediction", "RunConfig", "SpecialTokens", "StepOutput", "Uniform", "load_config",
]
__version__ = "0.1.0"
