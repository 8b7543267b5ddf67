"""Zero-shot NLL estimators on the exact toy: unbiased for the exact NLL, and their standard error is calibrated
(a +-2 se interval covers the truth about 95% of the time over repeated seeds)."""

import math

import pytest
import torch

from dlm.eval.estimators import TimeSampling, bound_samples, summarize
from dlm.process import Absorbing, LogLinear
from dlm.registry import ConfigError
from dlm.testing import ToyDistribution

TOY = ToyDistribution(length=3, vocab=3, seed=1)
PROCESS = Absorbing(3, LogLinear(eps=0.0))
DENOISER = TOY.denoiser(PROCESS)
SEEDS = 50
# 128 blocks: the 1/t-weighted draws are heavy-tailed (variance ~ log(1/eps)), so the normal interval needs a few
# hundred draws; with very few it undercovers on the low side (see dlm/eval/estimators.py)
X0 = TOY.states[torch.multinomial(TOY.probs, 128, replacement=True, generator=torch.Generator().manual_seed(0))]
TRUTH = float(TOY.nll(X0).sum()) / X0.numel()  # exact per-token NLL of this fixed dataset
TOKENS = torch.full((len(X0),), X0.shape[1])


def _runs(estimator: str, n_t: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    sampling = TimeSampling(estimator, n_t, "stratified", 1e-3)
    estimates, ses = [], []
    for seed in range(SEEDS):
        draws = bound_samples(DENOISER, PROCESS, X0, torch.ones(X0.shape), sampling,
                              generator=torch.Generator().manual_seed(seed))
        result = summarize(draws, TOKENS, estimator)
        estimates.append(result.nll)
        ses.append(result.se)
    return torch.tensor(estimates), torch.tensor(ses), result.se_method


@pytest.mark.parametrize(("estimator", "n_t", "method"), [("many", 8, "collapsed_strata"),
                                                          ("mdlm", 4, "independent_draws")])
def test_estimate_is_unbiased_and_its_standard_error_covers_the_truth(estimator, n_t, method):
    estimates, ses, se_method = _runs(estimator, n_t)
    assert se_method == method
    spread = float(estimates.std())
    assert abs(float(estimates.mean()) - TRUTH) < 3 * spread / math.sqrt(SEEDS), (estimates.mean(), TRUTH)
    covered = int(((estimates - TRUTH).abs() <= 2 * ses).sum())
    assert covered >= 43, covered  # Binomial(50, 0.95): P(X <= 42) = 0.3%
    assert 0.75 < float(ses.mean()) / spread < 1.5, (ses.mean(), spread)  # calibrated, not just wide


def test_single_draw_standard_error_is_conservative():
    estimates, ses, method = _runs("mdlm", 1)
    assert method == "between_blocks"
    assert float(ses.pow(2).mean().sqrt()) > 0.9 * float(estimates.std())  # conservative in mean square
    assert int(((estimates - TRUTH).abs() <= 2 * ses).sum()) >= 43


def test_summarize_formulas():
    samples = torch.tensor([[2.0, 4.0], [4.0, 8.0]])  # K = 2 draws of N = 2 blocks with 2 and 4 tokens
    tokens = torch.tensor([2, 4])
    exact = summarize(samples[:1], tokens, "exact")
    assert (exact.nll, exact.se, exact.num_tokens) == (1.0, 0.0, 6)
    draws = summarize(samples, tokens, "mdlm")  # block means 3, 6 over 6 tokens; var of means 1, 4
    assert draws.nll == pytest.approx(1.5) and draws.se == pytest.approx(math.sqrt(1.0 + 4.0) / 6)
    strata = summarize(samples, tokens, "many")  # one pair per block: (2-4)^2 / 4, (4-8)^2 / 4
    assert strata.se == pytest.approx(math.sqrt(1.0 + 4.0) / 6)
    out = draws.as_dict()
    assert out["ppl"] == pytest.approx(math.exp(1.5)) and out["ppl_se"] == pytest.approx(math.exp(1.5) * draws.se)
    assert out["bits_per_token"] == pytest.approx(1.5 / math.log(2))
    with pytest.raises(ConfigError, match="unknown estimator"):
        TimeSampling("bogus")
