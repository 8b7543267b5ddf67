"""Tiny models of every objective for the contract and hot-path tests: config overrides and a builder."""

import dlm

TINY = ["model.d_model=32", "model.n_layers=2", "model.n_heads=2", "model.max_len=32"]
SETUPS = {  # one per registered objective (tests/contracts checks the registry against it)
    "masked_elbo": ["process.name=absorbing"],
    "radd": ["process.name=absorbing"],
    "uniform_elbo": ["process.name=uniform", "objective.time_conditioning=true"],
    "score_entropy": ["process.name=absorbing", "objective.time_conditioning=true"],
    "autoregressive": [],
}
SEDD_UNIFORM = ["objective.name=score_entropy", "process.name=uniform", "objective.time_conditioning=true"]
VARIANTS = {name: [f"objective.name={name}", *extra] for name, extra in SETUPS.items()}
VARIANTS["sedd_uniform"] = SEDD_UNIFORM


def tiny_model(variant: str, vocab_size: int = 9) -> dlm.DiffusionLM:
    """A freshly initialized tiny DiffusionLM of one VARIANTS entry."""
    return dlm.DiffusionLM.from_config(dlm.load_config(None, TINY + VARIANTS[variant]), vocab_size=vocab_size)
