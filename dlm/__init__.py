"""dlm: discrete diffusion language models on one shared backbone.

Importing dlm has no side effects beyond filling its registries.
"""

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
