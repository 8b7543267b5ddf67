"""Evaluation: likelihood bounds (likelihood.py), zero-shot perplexity (zero_shot.py with corpora.py,
detokenizers.py, estimators.py), generative perplexity (generative.py), lm-eval-harness (harness.py, imports
lm_eval) and the `dlm eval` / `dlm lm-eval` commands (commands.py). Nothing is imported here: dlm.diffusion_lm
dlm.objectives imports dlm.eval.likelihood, and lm_eval is optional."""
