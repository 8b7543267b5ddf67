"""Sampling: `generate` (the one loop) and the samplers it runs, registered in SAMPLERS by name."""

from dlm.sample.analytic import Analytic
from dlm.sample.ancestral import Ancestral, AncestralCache
from dlm.sample.autoregressive import AutoregressiveSampler
from dlm.sample.base import Sampler, generate, get_sampler
from dlm.sample.block import BlockSampler
from dlm.sample.confidence import Confidence, num_transfer_tokens
from dlm.sample.entropy_bounded import EntropyBounded
from dlm.sample.first_hitting import FirstHitting
from dlm.sample.grids import TimeGrid
from dlm.sample.high_order import ThetaRK2, ThetaTrapezoidal
from dlm.sample.nfe import NFECounter
from dlm.sample.noise import NoiseTape
from dlm.sample.remdm import ReMDM
from dlm.sample.show_steps import StepRecorder
from dlm.sample.tau_leaping import Euler, TauLeaping
from dlm.sample.text_infill import parse_infill_template
from dlm.utils.deprecation import renamed

__all__ = ["Analytic", "Ancestral", "AncestralCache", "AutoregressiveSampler", "BlockSampler", "Confidence",
           "EntropyBounded", "Euler", "FirstHitting", "NFECounter", "NoiseTape", "ReMDM", "Sampler", "StepRecorder",
           "TauLeaping", "ThetaRK2", "ThetaTrapezoidal", "TimeGrid", "generate", "get_sampler", "num_transfer_tokens",
           "parse_infill_template"]

__getattr__ = renamed(__name__, {"Autoregressive": ("AutoregressiveSampler", AutoregressiveSampler)})
