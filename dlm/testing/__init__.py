"""Exact toy distributions and oracle denoisers: test any sampler, ELBO or cache against the exact law.

    from dlm.testing import ToyDistribution, Tabulated, empirical_law, mc_threshold
    toy = ToyDistribution(length=3, vocab=3, seed=1)            # a non-factorized p(x0) over all 27 sequences
    oracle = Tabulated(toy, Absorbing(3))                        # exact log p(x0^l | x_t) as a Denoiser
    x = generate(oracle, oracle.process, my_sampler, steps=64, shape=(20000, 3), generator=g)
    tv = 0.5 * (empirical_law(x, 4) - exact_law).abs().sum()    # judged against mc_threshold(exact_law, 20000)

With an exact denoiser the only errors left are the sampler's discretization and Monte Carlo noise, so a sampler's
law must converge to the data law as steps grow (tests/sample/test_convergence.py does this for every sampler).
"""

from dlm.testing.laws import empirical_law, fitted_order, mc_floor, mc_threshold
from dlm.testing.tabulated import Tabulated
from dlm.testing.toy import ToyDistribution

__all__ = ["Tabulated", "ToyDistribution", "empirical_law", "fitted_order", "mc_floor", "mc_threshold"]
