"""Few-step generation by distillation (docs/distillation.md): SDTT for masked and block-diffusion models (arXiv
2410.21035) and Duo's discrete consistency distillation for uniform-state models (arXiv 2506.10892).

    divergences.py    the student-to-target divergences (kl_bwd, kl_fwd, mse, tvd)
    sdtt.py           SDTT's target: the teacher's two ancestral steps per student step
    readers.py        what SDTT's target reads of a masked or a block-diffusion model (its time and its call)
    dcd.py            DCD's deterministic trajectory pair (z_t, z_s) (through process/gaussian_link.py) and its
                      consistency loss
    rounds.py         the round schedule: each round halves the sampling steps, the student becomes the teacher
    run.py            the loop: checkpoints, resume, per-round student exports
    commands.py       `dlm distill --method sdtt|dcd --teacher PATH`
A student is an ordinary dlm checkpoint: sample it with few steps (`dlm sample --steps 8`).
"""
