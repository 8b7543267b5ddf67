"""The training losses read the logits lean: they equal the Prediction-based integrands of
eval/likelihood.py, allocate no float64 (B, L, N) tensor, and the memory-saving autograd pieces have exact gradients."""


import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import dlm.model.attention
import dlm.objectives.autoregressive
import dlm.objectives.masked_elbo
import dlm.objectives.radd
from dlm.eval.likelihood import integrand as prediction_integrand
from dlm.process.uniform import MixtureLogSum
from dlm.utils.cross_entropy import gathered, logsumexp_and_gather, logsumexp_except, nll_from_logits
from tests.model.test_rotary import plain_rotate_qkv
from tests.tiny_models import VARIANTS, assert_same_step, seeded_step, tiny_model

DIFFUSION = ["masked_elbo", "score_entropy", "sedd_uniform", "uniform_elbo"]


@pytest.mark.parametrize("name", sorted(DIFFUSION))
def test_logit_integrand_equals_the_prediction_integrand(name):
    """objective.integrand(logits) = likelihood.integrand(predict(logits)) on float64 logits, masked and not."""
    model = tiny_model(name).double()
    objective, gen = model.objective, torch.Generator().manual_seed(0)
    x0 = torch.randint(0, 9, (3, 12), generator=gen)
    t = torch.tensor([0.05, 0.5, 0.97], dtype=torch.float64)
    xt = objective.process.corrupt(x0, t, generator=gen)
    logits = 3 * torch.randn(3, 12, objective.output_width, generator=gen, dtype=torch.float64)
    lean = objective.integrand(logits, x0, xt, t)
    expected = prediction_integrand(objective.process, objective.predict(logits, xt, t), x0, xt, t)
    torch.testing.assert_close(lean.double(), expected.double(), rtol=1e-6, atol=1e-6)


class _Float64Sizes(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float64:
                self.largest = max(self.largest, tensor.numel())
        return out


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_training_step_allocates_no_float64_logit_tensor(name):
    """Forward + backward of a training loss: every float64 tensor is per position (B, L) at most."""
    model = tiny_model(name)
    x0 = torch.randint(0, 9, (4, 24), generator=torch.Generator().manual_seed(0))
    with _Float64Sizes() as sizes:
        model.objective.loss(model.logits, x0,
                             generator=torch.Generator().manual_seed(1)).loss.backward()
    assert 0 < sizes.largest <= 4 * 24  # float64 is used (times, masks, the per-position combination), never (B, L, N)


def test_mixture_log_sum_gradient():
    gen = torch.Generator().manual_seed(0)
    lp = torch.log_softmax(torch.randn(2, 3, 5, generator=gen, dtype=torch.float64), -1).requires_grad_()
    a = torch.log(torch.tensor([0.3, 4.0], dtype=torch.float64)).view(2, 1, 1)
    b = torch.log(torch.tensor([0.7, 0.2], dtype=torch.float64)).view(2, 1, 1)
    torch.autograd.gradcheck(lambda x: MixtureLogSum.apply(x, a, b), (lp,))
    torch.testing.assert_close(MixtureLogSum.apply(lp, a, b), torch.logaddexp(lp + a, b).sum(-1))


@pytest.mark.parametrize("exclude", [None, 0, 3, 6])
def test_fused_cross_entropy_equals_log_softmax_and_its_gradient(exclude):
    """nll_from_logits (torch's fused cross-entropy, the excluded category at -inf) = -log_softmax over the kept
    categories at the target, and its gradient is that of the plain expression (zero at the excluded category)."""
    gen = torch.Generator().manual_seed(4)
    logits = 4 * torch.randn(3, 5, 7, generator=gen, dtype=torch.float64)
    logits.requires_grad_()
    keep = [j for j in range(7) if j != exclude]
    target = torch.tensor(keep)[torch.randint(0, len(keep), (3, 5), generator=gen)]
    weights = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    got = nll_from_logits(logits, target, exclude=exclude)
    log_probs = torch.log_softmax(logits[..., keep], -1)
    want = -log_probs.gather(-1, torch.searchsorted(torch.tensor(keep), target).unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    grad = torch.autograd.grad((got * weights).sum(), logits)[0]
    plain = torch.autograd.grad((want * weights).sum(), logits)[0]
    torch.testing.assert_close(grad, plain, rtol=1e-12, atol=1e-12)
    if exclude is not None:
        assert torch.equal(grad[..., exclude], torch.zeros(3, 5, dtype=torch.float64))


def _plain_nll(logits, target, exclude=None):
    """The pre-fusion loss read: logsumexp (over the kept categories) minus the gathered target logit."""
    kept = logits if exclude is None else logits.index_fill(-1, torch.tensor([exclude]), float("-inf"))
    return kept.logsumexp(-1) - kept.gather(-1, target.unsqueeze(-1)).squeeze(-1)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_fused_training_step_equals_the_plain_one(name, monkeypatch):
    """A seeded DiffusionLM.loss and every parameter gradient are those of the same model with the fused pieces
    (rotate_qkv, fused cross-entropy) replaced by their plain autograd compositions: up to float rounding."""
    x0 = torch.randint(0, 9, (4, 24), generator=torch.Generator().manual_seed(0))
    fused = seeded_step(name, x0)
    monkeypatch.setattr(dlm.model.attention, "rotate_qkv", plain_rotate_qkv)
    for module in (dlm.objectives.masked_elbo, dlm.objectives.radd, dlm.objectives.autoregressive):
        monkeypatch.setattr(module, "nll_from_logits", _plain_nll)
    assert_same_step(fused, seeded_step(name, x0))


@pytest.mark.parametrize("exclude", [None, 0, 3, 6])
def test_logsumexp_and_gather_equals_the_two_plain_reads_and_their_gradient(exclude):
    """logsumexp_and_gather (one node, SEDD's score-entropy read) = (logsumexp over the kept categories, the
    gathered logit) with the gradient of that plain composition, also when only one output is used."""
    gen = torch.Generator().manual_seed(5)
    logits = (4 * torch.randn(3, 5, 7, generator=gen, dtype=torch.float64)).requires_grad_()
    ids = torch.randint(0, 7, (3, 5), generator=gen)
    w1, w2 = torch.randn(2, 3, 5, generator=gen, dtype=torch.float64)
    lse, picked = logsumexp_and_gather(logits, ids, exclude)
    plain_lse = logits.logsumexp(-1) if exclude is None else logsumexp_except(logits, exclude)
    torch.testing.assert_close(lse, plain_lse, rtol=1e-12, atol=1e-12)
    assert torch.equal(picked, gathered(logits, ids))
    uses = [lambda lse, g: (lse.exp() * w1 + g * w2).sum(), lambda lse, g: (lse * w1).sum(),
            lambda lse, g: (g * w2).sum()]
    for use in uses:
        grad, = torch.autograd.grad(use(*logsumexp_and_gather(logits, ids, exclude)), logits)
        plain = logits.logsumexp(-1) if exclude is None else logsumexp_except(logits, exclude)
        want, = torch.autograd.grad(use(plain, gathered(logits, ids)), logits)
        torch.testing.assert_close(grad, want, rtol=1e-12, atol=1e-12)
    torch.autograd.gradcheck(lambda h: logsumexp_and_gather(h, ids, exclude), (logits,))
