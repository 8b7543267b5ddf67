"""The clipped-schedule search (objectives/clip_search.py): the reference's 36 candidates, and the least-variance
window picked from a synthetic table and from a model's per-block estimates."""

import torch

from dlm.objectives.clip_search import candidate_windows, least_variance_window
from tests.block.helpers import tiny_block_model, tokens


def test_the_paper_widths_give_36_windows_ending_at_1_for_the_widest():
    windows = candidate_windows()
    assert len(windows) == 36 and windows[0] == (0.0, 1.0)
    assert (0.5, 1.0) in windows and (0.0, 0.5) in windows and (0.1, 1.0) in windows
    assert all(0 <= beta < omega <= 1 for beta, omega in windows)


def test_the_least_variance_window_wins_on_a_synthetic_table():
    gen = torch.Generator().manual_seed(0)
    spreads = {(0.0, 1.0): 3.0, (0.3, 0.8): 0.5, (0.2, 0.9): 1.0}
    table = {w: [s * torch.randn(8, 4, generator=gen) + 10 * i for i in range(5)] for w, s in spreads.items()}
    assert least_variance_window(table) == (0.3, 0.8)
    table[(0.2, 0.9)] = [0.1 * batch for batch in table[(0.2, 0.9)]]  # now the quietest
    assert least_variance_window(table) == (0.2, 0.9)


def test_per_block_estimates_average_each_blocks_loss():
    model = tiny_block_model(4)
    x0 = tokens(3)
    with torch.no_grad():
        generator = torch.Generator().manual_seed(0)
        blocks = model.objective.block_estimates(model.logits, x0, (0.0, 1.0), generator=generator)
        loss = model.loss(x0, generator=torch.Generator().manual_seed(0)).loss
    assert blocks.shape == (3, 4)
    torch.testing.assert_close(blocks.mean().float(), loss, rtol=1e-6, atol=1e-6)
