"""Guidance: classifier-free guidance as a Denoiser wrapping a Denoiser (cfg.py), and the condition dropout that
trains one network for both branches (conditioning.py)."""

from dlm.guidance.cfg import ClassifierFreeGuidance, guide, label_guidance, prompt_guidance
from dlm.guidance.conditioning import drop_labels, mask_prompt

__all__ = ["ClassifierFreeGuidance", "drop_labels", "guide", "label_guidance", "mask_prompt", "prompt_guidance"]
