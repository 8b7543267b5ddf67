"""Forward processes and noise schedules."""

from dlm.process.absorbing import Absorbing
from dlm.process.base import Process
from dlm.process.schedules import Cosine, Geometric, Linear, LogLinear, Schedule, build_schedule
from dlm.process.uniform import Uniform

__all__ = [
    "Absorbing", "Cosine", "Geometric", "Linear", "LogLinear", "Process", "Schedule", "Uniform", "build_schedule",
]
