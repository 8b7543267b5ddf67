import torch

from dlm.process import Absorbing
from dlm.sample import NFECounter
from tests.sample.helpers import TOY


def test_nfe_counter_counts_calls_and_rows():
    process = Absorbing(3)
    counter = NFECounter(TOY.denoiser(process))
    counter(torch.full((5, 3), 3), torch.ones(5))
    counter(torch.full((2, 3), 3), torch.ones(2))
    assert (counter.calls, counter.rows) == (2, 7)
