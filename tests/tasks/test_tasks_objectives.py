"""MGDM token reweighting equals its formula on a toy; condition_prefix keeps the prompt clean and out of the loss."""

import math

import pytest
import torch

import dlm
from dlm.objectives.masked_elbo import token_reweighting

TINY = ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.max_len=32"]


def _masked_setup(extra):
    cfg = dlm.load_config(None, TINY + ["process.name=absorbing", "objective.name=masked_elbo", *extra])
    return dlm.DiffusionLM.from_config(cfg, vocab_size=4).objective


def test_token_reweighting_formula_on_a_toy():
    """Two masked tokens with x_theta(x0) = 0.5 and 0.9: MGDM (arXiv 2410.14157) multiplies -log p by
    alpha (1 - p)^gamma, so with alpha = 0.25, gamma = 2 the weights are 0.0625 and 0.0025 (hard tokens count more)."""
    objective = _masked_setup(["objective.token_reweight_gamma=2", "objective.token_reweight_alpha=0.25"])
    mask = objective.mask_id
    x0 = torch.tensor([[0, 1, 2]])
    xt = torch.tensor([[mask, mask, 2]])
    probs = torch.full((1, 3, 5), 0.0, dtype=torch.float64)
    probs[0, 0, :2] = torch.tensor([0.5, 0.5])
    probs[0, 1, :2] = torch.tensor([0.1, 0.9])
    probs[0, 2, 2] = 1.0
    log_probs = probs.clamp_min(1e-300).log()
    t = torch.tensor([0.5], dtype=torch.float64)
    weighted = objective.integrand(log_probs, x0, xt, t)  # log-probs are logits of themselves
    w_t = float(objective.weight(t))
    expected = [w_t * 0.25 * (1 - q) ** 2 * -math.log(q) for q in (0.5, 0.9)]
    torch.testing.assert_close(weighted[0, :2], torch.tensor(expected, dtype=torch.float64))
    assert weighted[0, 2] == 0  # unmasked: no loss either way
    torch.testing.assert_close(token_reweighting(log_probs, x0, 0.25, 2.0)[0, :2], torch.tensor([0.0625, 0.0025],
                                                                                                 dtype=torch.float64))
    plain = _masked_setup([]).integrand(log_probs, x0, xt, t)  # the default: off
    torch.testing.assert_close(plain[0, :2], torch.tensor([w_t * -math.log(q) for q in (0.5, 0.9)],
                                                          dtype=torch.float64))


class _Recorder(torch.nn.Module):
    """A logits function that remembers its input and returns uniform logits."""

    def __init__(self, width):
        super().__init__()
        self.width, self.seen = width, []

    def forward(self, xt, t):
        self.seen.append(xt.clone())
        return torch.zeros(*xt.shape, self.width)


@pytest.mark.parametrize("setup", [["process.name=absorbing", "objective.name=masked_elbo"],
                                   ["process.name=uniform", "objective.name=uniform_elbo",
                                    "objective.time_conditioning=true"]])
def test_condition_prefix_is_clean_and_unscored(setup):
    prefix, length = 5, 12
    model = dlm.DiffusionLM.from_config(dlm.load_config(None, TINY + setup + [f"objective.condition_prefix={prefix}"]),
                                        vocab_size=4)
    x0 = torch.randint(0, 4, (64, length), generator=torch.Generator().manual_seed(0))
    recorder = _Recorder(model.objective.output_width)
    out = model.objective.loss(recorder, x0, generator=torch.Generator().manual_seed(1))
    xt = recorder.seen[0]
    assert torch.equal(xt[:, :prefix], x0[:, :prefix])
    assert bool((xt[:, prefix:] != x0[:, prefix:]).any())  # the answer is corrupted
    assert out.num_tokens == 64 * (length - prefix)


def test_condition_prefix_autoregressive_scores_only_the_answer():
    prefix, length = 5, 12
    cfg = dlm.load_config(None, TINY + ["objective.name=autoregressive", f"objective.condition_prefix={prefix}"])
    model = dlm.DiffusionLM.from_config(cfg, vocab_size=4)
    x0 = torch.randint(0, 4, (3, length), generator=torch.Generator().manual_seed(0))
    out = model.loss(x0)
    assert out.num_tokens == 3 * (length - prefix)
    nll = model.objective.token_nll(model, x0)[:, prefix - 1 :]  # output l - 1 predicts token l >= prefix
    torch.testing.assert_close(out.nll_sum.float(), nll.sum().double().float())
