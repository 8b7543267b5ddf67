"""Forward processes and noise schedules.

Every module of this package is imported here, so a new process is one file: `process/<name>.py` subclassing
Process and registering itself in PROCESSES (tests/contracts then check it against the exact toy).
"""

import importlib
import pkgutil

from dlm.process.absorbing import Absorbing
from dlm.process.base import Capability, Process
from dlm.process.schedules import Cosine, Geometric, Linear, LogLinear, Schedule, build_schedule
from dlm.process.uniform import Uniform

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")  # fills PROCESSES with every process file

__all__ = [
    "Absorbing", "Capability", "Cosine", "Geometric", "Linear", "LogLinear", "Process", "Schedule", "Uniform",
    "build_schedule",
]
