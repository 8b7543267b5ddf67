"""Reinforcement learning from a rule checker: diffu-GRPO (d1, arXiv 2504.12216) for masked models and plain GRPO
(arXiv 2402.03300) for the autoregressive baseline, through the same code (docs/posttraining.md).

    rollouts.py    G completions per prompt from the model's own sampler
    rewards.py     the task checker's reward and group-relative advantages
    loss.py        the clipped policy-ratio objective with the k3 KL penalty
    run.py         the loop: mu inner updates per batch of generations, checkpoints, resume, metrics
    commands.py    `dlm rl --task NAME --checkpoint PATH`
The per-token log-probability comes from the objective (`objective.token_log_probs`): d1's one-step estimator for
a masked model, the exact next-token log-probability for the autoregressive baseline.
"""
