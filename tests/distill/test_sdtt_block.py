"""SDTT on block-diffusion models (docs/distillation.md#sdtt-on-block-diffusion-models): with one block (block_size
= L) the loss is the masked model's, draw for draw; with several blocks the target's expectation in each block is
the teacher's two-step law of that block given its clean prefix, composed in closed form over the block's states."""

from __future__ import annotations

import torch

import dlm
from dlm.sample.ancestral import Ancestral
from dlm.sample.exact import all_states, state_index, step_kernel
from dlm.train.distill.readers import BlockReader, reader_of
from dlm.train.distill.sdtt import sdtt_loss, teacher_x0, two_step_target
from tests.block.helpers import TINY, tiny_block_model, tokens


def masked_twin(block: dlm.DiffusionLM) -> dlm.DiffusionLM:
    """A masked_elbo model with the block model's weights."""
    masked = dlm.DiffusionLM.from_config(dlm.load_config(None, TINY + ["objective.name=masked_elbo"]), vocab_size=9)
    masked.load_state_dict(block.state_dict())
    return masked.to(torch.float64).eval()


def test_block_size_L_sdtt_loss_is_the_masked_sdtt_loss():
    teacher, student = tiny_block_model(16, seed=0), tiny_block_model(16, seed=1)
    x0, times = tokens(6), Ancestral().grid(4).times
    results = []
    for pair in ((student, teacher), (masked_twin(student), masked_twin(teacher))):
        loss, scored = sdtt_loss(*pair, reader_of(pair[0]), x0, times, generator=torch.Generator().manual_seed(0))
        loss.backward()
        results.append((loss.detach(), scored, [p.grad for p in pair[0].parameters()]))
    (block_loss, block_scored, block_grads), (masked_loss, masked_scored, masked_grads) = results
    assert block_scored == masked_scored > 0 and float(block_loss) > 1e-4
    torch.testing.assert_close(block_loss, masked_loss, rtol=1e-6, atol=1e-7)
    for g_block, g_masked in zip(block_grads, masked_grads):
        torch.testing.assert_close(g_block, g_masked, rtol=1e-5, atol=1e-7)


def block_denoiser(model: dlm.DiffusionLM, prefix: torch.Tensor):
    """x_theta(. | x_t^k, x^{<k}) of one block by hand: the block run after its clean prefix (1, P) in one
    block-causal pass over [prefix, block] (positions 0..P+b-1), the block's columns."""
    def denoise(block: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        window = torch.cat([prefix.expand(len(block), -1), block], dim=1)
        return model(window).log_probs[:, prefix.shape[1]:]
    return denoise


def test_block_target_is_each_blocks_two_step_law_given_its_clean_prefix():
    b, vocab = 2, 3
    model = tiny_block_model(b, vocab_size=vocab)
    with torch.no_grad():
        model.backbone.head.weight.mul_(6.0)  # laws far from uniform, so that the two steps matter
    process, m = model.process, model.mask_id
    x0 = torch.tensor([[0, 2, 1, 1, 2, 0]])
    xt = torch.tensor([[m, m, 1, m, m, m]])  # masks in every block: a noisy prefix would change every later block
    # a time per block; u off the midpoint, where the target's weights p1/p, (1 - p1)p2/p depend on the times (at the
    # midpoint of a log-linear schedule both are 1/2 whatever t and s)
    block_t, block_u, block_s = (torch.tensor(v, dtype=torch.float64) for v in ([0.9, 0.7, 1.0], [0.8, 0.4, 0.3],
                                                                                   [0.3, 0.3, 0.1]))
    states = all_states(process.width, b)
    reader = reader_of(model)  # what `dlm distill` reads a block teacher with
    assert isinstance(reader, BlockReader)
    gain = 0.0  # how far the two-step law moves from the one-step law: what the test can tell apart
    for k in range(x0.shape[1] // b):
        cols = slice(k * b, (k + 1) * b)
        t, u, s = (float(v[k]) for v in (block_t, block_u, block_s))
        oracle = block_denoiser(model, x0[:, :k * b])
        with torch.no_grad():  # closed form: the row of x_t^k in K(t -> u) K(u -> s) of the block given its prefix
            kernel_tu = step_kernel(Ancestral(), oracle, process, states, t, u)
            law = (kernel_tu @ step_kernel(Ancestral(), oracle, process, states, u, s))[state_index(xt[:, cols],
                                                                                                    process.width)][0]
        weights = kernel_tu[state_index(xt[:, cols], process.width)][0]
        reached = weights > 0
        n = int(reached.sum())
        xu = xt.repeat(n, 1)
        xu[:, cols] = states[reached]  # the other blocks' draws do not reach block k's law: left at x_t
        times = [reader.per_token(v.expand(n, -1)) for v in (block_t, block_u, block_s)]
        rows = x0.expand(n, -1)
        with torch.no_grad():  # the estimator's expectation: every x_u^k weighted by the teacher's first step
            first = teacher_x0(model, reader, xt.expand(n, -1), times[0], rows)
            target, scored = two_step_target(process, first, teacher_x0(model, reader, xu, times[1], rows), xu,
                                             *times)
        for pos in range(k * b, (k + 1) * b):
            if xt[0, pos] != m:
                continue
            marginal = torch.stack([law[states[:, pos - k * b] == v].sum() for v in range(process.width)])
            clean = marginal[:m] / (1 - marginal[m])  # the two-step law given that the position unmasks
            w = weights[reached] * scored[:, pos]
            expected = (w[:, None] * target[:, pos, :m]).sum(0) / w.sum()
            torch.testing.assert_close(expected, clean, rtol=0, atol=1e-10)
            gain = max(gain, float((clean - first[0, pos, :m]).abs().max()))
    assert gain > 1e-3
