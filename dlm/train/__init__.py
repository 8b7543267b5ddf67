"""Training: the loop, parallelism applied from outside the model, optimizer, EMA, checkpoints, metrics."""

from dlm.train.commands import train_command
from dlm.train.loop import train

__all__ = ["train", "train_command"]
