"""Tiny models of every objective for the contract and hot-path tests: config overrides and a builder."""

import torch

import dlm

TINY = ["model.d_model=32", "model.n_layers=2", "model.n_heads=2", "model.max_len=32"]
# every objective by its name alone: each declares its process and time-conditioning defaults (tests/contracts checks
# the registry)
SETUPS = ["autoregressive", "block_diffusion", "masked_elbo", "mean_elbo", "radd", "score_entropy", "uniform_elbo"]
VARIANTS = {name: [f"objective.name={name}"] for name in SETUPS}
VARIANTS["sedd_uniform"] = ["objective.name=score_entropy", "process.name=uniform"]


def tiny_model(variant: str, vocab_size: int = 9) -> dlm.DiffusionLM:
    """A freshly initialized tiny DiffusionLM of one VARIANTS entry."""
    return dlm.DiffusionLM.from_config(dlm.load_config(None, TINY + VARIANTS[variant]), vocab_size=vocab_size)


def seeded_step(variant: str, x0, prepare=None):
    """(loss, every parameter's gradient) of one seeded DiffusionLM.loss + backward on x0, after prepare(model)
    (e.g. a module swapped for its plain twin): equal runs give equal results, so two paths can be compared."""
    torch.manual_seed(0)
    model = tiny_model(variant)
    if prepare is not None:
        prepare(model)
    out = model.loss(x0, generator=torch.Generator().manual_seed(1))
    out.loss.backward()
    return out.loss.detach(), [p.grad for p in model.parameters()]


def assert_same_step(step, other) -> None:
    """Two seeded_step results agree up to float32 rounding (loss and every gradient)."""
    (loss, grads), (other_loss, other_grads) = step, other
    torch.testing.assert_close(loss, other_loss, rtol=1e-6, atol=1e-7)
    for grad, plain in zip(grads, other_grads):
        torch.testing.assert_close(grad, plain, rtol=1e-4, atol=1e-6)
