"""Editing: DICE exact discrete inversion and controllable editing (He et al., arXiv 2410.08207; docs/dice.md).

    trace = invert(denoiser, process, x0, steps=K, tau=0.7)          # record masks, eta and residuals
    x = edit(partial(model, label=other), trace, lambda1=0.7)        # replay under another condition
    edit(denoiser, trace, lambda1=1.0, lambda2=0.0)                   # == x0 bit for bit
"""

from dlm.edit.dice import edit, invert
from dlm.edit.trace import Trace

__all__ = ["Trace", "edit", "invert"]
