"""Infilling: prompt_mask positions are clamped; the others follow the exact conditional p(x_unknown | x_known)."""

import pytest
import torch

from dlm.data.tokenizer import build_tokenizer
from dlm.process import Absorbing, Uniform
from dlm.registry import ConfigError
from dlm.sample import generate, get_sampler
from dlm.sample.exact import exact_law, total_variation
from dlm.sample.text_infill import parse_infill_template
from dlm.testing import ToyDistribution
from tests.sample.helpers import TOY, Tabulated, empirical_law, mc_threshold

PER_VALUE = 3000
CUBE = TOY.probs.reshape(3, 3, 3)


def middle_known(values: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """PER_VALUE rows per value v with x^1 = v known and x^0, x^2 to fill."""
    prompt = torch.zeros(PER_VALUE * len(values), 3, dtype=torch.long)
    prompt[:, 1] = torch.tensor(values).repeat_interleave(PER_VALUE)
    known = torch.zeros_like(prompt, dtype=torch.bool)
    known[:, 1] = True
    return prompt, known


def conditional(v: int) -> torch.Tensor:
    """p(x^0, x^2 | x^1 = v) over the 9 pairs."""
    return (CUBE[:, v, :] / CUBE[:, v, :].sum()).reshape(-1)


def pair_toy(v: int) -> ToyDistribution:
    """The conditional as a 2-token toy: the masked oracle given a clean x^1 = v is its oracle, so exact.py gives the
    sampler's exact bias on the infilling task."""
    toy = ToyDistribution(length=2, vocab=3)
    toy.probs = conditional(v)
    return toy


def check_middle_conditionals(x: torch.Tensor, values: list[int], biases: list[float]) -> None:
    for k, (v, bias) in enumerate(zip(values, biases)):
        rows = x[k * PER_VALUE:(k + 1) * PER_VALUE]
        assert bool((rows[:, 1] == v).all()), "a clamped position moved"
        emp = empirical_law(rows[:, [0, 2]], 3)
        assert total_variation(emp, conditional(v)) < bias + mc_threshold(conditional(v), PER_VALUE), v


@pytest.mark.parametrize("kind", ["mean", "score"])
@pytest.mark.parametrize("name, options, steps", [("ancestral", {}, 64), ("tau_leaping", {}, 64),
                                                  ("theta_trapezoidal", {}, 16),
                                                  ("confidence", {"remasking": "random"}, 2)])
def test_masked_infill_follows_the_exact_conditional(name, options, steps, kind):
    """Absorbing (MDLM and SEDD-absorb outputs): known positions start unmasked and the oracle conditions on them."""
    den = Tabulated(TOY, Absorbing(3), kind)
    values = [0, 1, 2]
    prompt, known = middle_known(values)
    sampler = get_sampler(name, **options)
    x = generate(den, den.process, sampler, steps=steps, prompt=prompt, prompt_mask=known,
                 generator=torch.Generator().manual_seed(3))
    biases = [0.0] * 3 if name == "confidence" else [  # random order, one token per step: exact
        total_variation(exact_law(sampler, Tabulated(pair_toy(v), Absorbing(3)), Absorbing(3), steps=steps,
                                  length=2).reshape(4, 4)[:3, :3].reshape(-1), conditional(v)) for v in values]
    check_middle_conditionals(x, values, biases)


def test_any_spans_and_prompt_broadcast():
    """Known x^0 and x^2 (one unknown in between) with a (1, L) prompt broadcast over the batch."""
    den = Tabulated(TOY, Absorbing(3))
    prompt, known = torch.tensor([[2, 0, 1]]), torch.tensor([[True, False, True]])
    x = generate(den, den.process, "ancestral", steps=4, shape=(PER_VALUE, 3), prompt=prompt, prompt_mask=known,
                 generator=torch.Generator().manual_seed(4))
    assert bool((x[:, [0, 2]] == torch.tensor([2, 1])).all())
    exact = CUBE[2, :, 1] / CUBE[2, :, 1].sum()  # one unknown: its conditional is drawn exactly
    emp = torch.bincount(x[:, 1], minlength=3).double() / PER_VALUE
    assert total_variation(emp, exact) < mc_threshold(exact, PER_VALUE)


@pytest.mark.parametrize("name, steps", [("ancestral", 64), ("theta_trapezoidal", 32), ("analytic", 64)])
def test_uniform_infill_with_a_prompt_conditioned_denoiser(name, steps):
    """Uniform: the clamp is re-applied after every step (SEDD's projector) and the clamped tokens never move.
    With a denoiser of the conditional law (a model trained for infilling) the samples are the exact conditional.
    An unconditional uniform denoiser reads a clamped clean token as a noisy one, so projection alone is not
    exact there (0.24 TV on this toy): conditioning has to come from the model."""
    v = 1
    conditional_toy = ToyDistribution(length=3, vocab=3)
    cube = torch.zeros(3, 3, 3, dtype=torch.float64)
    cube[:, v, :] = CUBE[:, v, :] / CUBE[:, v, :].sum()
    conditional_toy.probs = cube.reshape(-1)
    den = Tabulated(conditional_toy, Uniform(3))
    prompt, known = middle_known([v])
    states = []
    x = generate(den, den.process, name, steps=steps, prompt=prompt, prompt_mask=known,
                 generator=torch.Generator().manual_seed(5), on_step=lambda i, t, xt: states.append(xt[:, 1].clone()))
    assert all(bool((column == v).all()) for column in states)
    # the unknown pair evolves as the 2-token uniform chain of the conditional law: its exact bias
    pair_law = exact_law(get_sampler(name), Tabulated(pair_toy(v), Uniform(3)), Uniform(3), steps=steps, length=2)
    check_middle_conditionals(x, [v], [total_variation(pair_law, conditional(v))])


def test_parse_infill_template_with_gpt2(shared_file):
    shared_file("tokenizers/gpt2/encoder.json")
    tokenizer = build_tokenizer("gpt2")
    prompt, known = parse_infill_template("To be, or <mask:12> the question", tokenizer)
    head, tail = tokenizer.encode("To be, or"), tokenizer.encode(" the question")
    assert prompt.shape == known.shape == (1, len(head) + 12 + len(tail))
    assert known[0].tolist() == [True] * len(head) + [False] * 12 + [True] * len(tail)
    assert prompt[0, :len(head)].tolist() == head and prompt[0, -len(tail):].tolist() == tail
    spans, _ = parse_infill_template("<mask:2>a<mask:3>", tokenizer)
    assert spans.shape[1] == 2 + len(tokenizer.encode("a")) + 3
    with pytest.raises(ConfigError):
        parse_infill_template("no placeholder here", tokenizer)
    with pytest.raises(ConfigError):
        parse_infill_template("broken <mask:> here", tokenizer)
