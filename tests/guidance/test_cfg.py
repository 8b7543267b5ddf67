"""Classifier-free guidance: scale 0 is the unguided model exactly, guided rows are distributions, and on one
position the sampled law is exactly the tilted p(x|c)^(1+w) p(x)^(-w) / Z, for masked, uniform and score models.
On two positions it is not the tilted joint (what the docstring says CFG does not guarantee)."""

import pytest
import torch

from dlm.guidance import ClassifierFreeGuidance, guide, label_guidance, prompt_guidance
from dlm.objectives.masked_elbo import subs
from dlm.process import Absorbing, LogLinear, Uniform
from dlm.sample import generate, get_sampler
from dlm.sample.exact import all_states, exact_law, state_index, total_variation
from dlm.testing import ToyDistribution
from dlm.types import Prediction
from tests.cache.helpers import tiny_model
from tests.sample.helpers import empirical_law, mc_threshold

V = 4
P_COND = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.1, 0.2, 0.3, 0.4]], dtype=torch.float64)  # p(x | c), c = 0, 1
P_MARGINAL = P_COND.mean(0)  # two equally likely classes


def tilted(c: int, w: float) -> torch.Tensor:
    law = P_COND[c] ** (1 + w) * P_MARGINAL ** (-w)
    return law / law.sum()


def one_position_oracle(process, kind: str):
    """(xt (B, 1), t, label=None) -> the exact output of a one-position model of p(x | label) (label None: p(x))."""

    def call(xt, t, label=None):
        probs = (P_MARGINAL if label is None else P_COND[label]).expand(xt.shape[0], 1, V)
        x0 = torch.nn.functional.pad(probs, (0, process.width - V))
        if kind == "score":
            return Prediction(log_score=process.concrete_score(xt, x0, t.double()).log())
        if isinstance(process, Absorbing):  # SUBS carry-over of an unmasked token
            x0 = torch.where((xt < V)[..., None], torch.nn.functional.one_hot(xt, process.width).double(), x0)
        return Prediction(log_probs=x0.clamp_min(1e-300).log())

    return call


# alpha(1) = 0 for uniform noise, so the sampler's start pi^L is the exact t = 1 law
CASES = {"masked": (lambda: Absorbing(V), "mean", "ancestral"),
         "uniform": (lambda: Uniform(V, LogLinear(eps=0.0)), "mean", "ancestral"),
         "masked_score": (lambda: Absorbing(V), "score", "analytic")}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("w", [0.0, 0.5, 2.0])
def test_one_position_law_is_exactly_the_tilted_distribution(case, w):
    make_process, kind, sampler = CASES[case]
    process = make_process()
    guided = ClassifierFreeGuidance(one_position_oracle(process, kind), w, conditional={"label": 1})
    law = exact_law(get_sampler(sampler), guided, process, steps=5, length=1)
    target = torch.nn.functional.pad(tilted(1, w), (0, process.width - V))
    torch.testing.assert_close(law, target, rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", ["masked", "uniform"])
def test_one_position_samples_follow_the_tilted_distribution(case):
    make_process, kind, sampler = CASES[case]
    process, n, w = make_process(), 20000, 1.5
    guided = ClassifierFreeGuidance(one_position_oracle(process, kind), w, conditional={"label": 0})
    x = generate(guided, process, sampler, steps=4, shape=(n, 1), generator=torch.Generator().manual_seed(0))
    target = tilted(0, w)
    assert total_variation(empirical_law(x, V), target) < mc_threshold(target, n)
    assert total_variation(target, P_COND[0]) > 10 * mc_threshold(target, n)  # the test can tell w apart


def test_scale_zero_is_the_unguided_model_exactly():
    model = tiny_model("model.num_classes=3", sharpen=4.0)
    xt = torch.randint(0, 12, (5, 20), generator=torch.Generator().manual_seed(0))
    label = torch.tensor([0, 1, 2, 1, 0])
    with torch.no_grad():
        assert torch.equal(label_guidance(model, label, 0.0)(xt, None).log_probs, model(xt, label=label).log_probs)
        plain = tiny_model(sharpen=4.0)
        known = torch.zeros(1, 20, dtype=torch.bool)
        known[:, :6] = True
        guided = prompt_guidance(plain, 0.0, known, plain.process.mask_id)
        assert torch.equal(guided(xt, None).log_probs, plain(xt).log_probs)


def test_guided_rows_are_distributions_and_match_llada_raw_logit_form():
    """log_softmax((1 + w) log x_c - w log x_u) == SUBS((1 + w) l_c - w l_u) on raw logits (LLaDA), every row
    normalized, the mask never proposed and carried-over tokens kept."""
    model, w = tiny_model("model.num_classes=3", sharpen=4.0), 1.7
    xt = torch.randint(0, 12, (4, 16), generator=torch.Generator().manual_seed(1))
    label, null = torch.tensor([0, 1, 2, 0]), torch.full((4,), 3)
    with torch.no_grad():
        guided = label_guidance(model, label, w)(xt, None).log_probs
        raw_c, raw_u = model.backbone(xt, label=label), model.backbone(xt, label=null)
    mask_id = model.process.mask_id
    llada = subs((1 + w) * raw_c.double() - w * raw_u.double(), xt, mask_id)
    masked = xt == mask_id
    torch.testing.assert_close(guided[masked].exp(), llada[masked].double().exp(), rtol=0, atol=1e-6)  # subs: fp32
    torch.testing.assert_close(guided.exp().sum(-1), torch.ones(4, 16, dtype=torch.float64), rtol=0, atol=1e-12)
    assert float(guided[..., mask_id].exp().max()) == 0.0
    assert bool((guided.argmax(-1)[~masked] == xt[~masked]).all())


def test_score_guidance_keeps_zero_at_the_current_token_and_a_normalized_x0():
    process = Absorbing(V)
    oracle = one_position_oracle(process, "score")
    xt, t = torch.full((3, 1), V), torch.full((3,), 0.4, dtype=torch.float64)
    guided = ClassifierFreeGuidance(oracle, 2.0, conditional={"label": 1})(xt, t.float())
    assert bool((guided.log_score.gather(-1, xt[..., None]) == 0).all())
    torch.testing.assert_close(process.x0_from_score(guided.log_score.exp(), xt, t)[0, 0, :V], tilted(1, 2.0),
                               rtol=0, atol=1e-9)


def test_unsupervised_guidance_masks_the_prompt_in_the_unconditional_branch():
    seen = []

    def spy(xt, t):
        seen.append(xt.clone())
        return torch.zeros(*xt.shape, V + 1)

    known = torch.tensor([[True, True, False, False]])
    xt = torch.tensor([[2, 3, V, 1]])
    prompt_guidance(spy, 1.0, known, V)(xt, None)
    assert seen[0].tolist() == [[2, 3, V, 1]] and seen[1].tolist() == [[V, V, V, 1]]
    with pytest.raises(Exception, match="cache"):
        prompt_guidance(spy, 1.0, known, V)(xt, None, cache=object())
    with pytest.raises(Exception, match="scale"):
        prompt_guidance(spy, -1.0, known, V)


def test_two_positions_are_not_the_tilted_joint():
    """Guidance tilts each per-position conditional; decoding one random position at a time (exact for w = 0)
    then differs from the tilted joint p(x|c)^(1+w) p(x)^(-w) / Z: the documented non-guarantee."""
    toys = [ToyDistribution(length=2, vocab=3, seed=s) for s in (3, 4)]
    mixture = ToyDistribution(length=2, vocab=3, seed=3)
    mixture.probs = (toys[0].probs + toys[1].probs) / 2
    process = Absorbing(3)
    branches = {0: toys[0].denoiser(process), None: mixture.denoiser(process)}
    oracle = lambda xt, t, label=None: branches[label](xt, t)  # noqa: E731
    t = torch.full((1,), 0.5)
    for w, agrees in ((0.0, True), (2.0, False)):
        guided = ClassifierFreeGuidance(oracle, w, conditional={"label": 0})
        law = one_at_a_time_law(guided, t)
        joint = toys[0].probs ** (1 + w) * mixture.probs ** (-w)
        assert (total_variation(law, joint / joint.sum()) < 1e-12) == agrees


def one_at_a_time_law(denoiser, t) -> torch.Tensor:
    """Exact law over the 9 states of unmasking 2 positions one at a time in a uniformly random order."""
    law = torch.zeros(9, dtype=torch.float64)
    states = all_states(3, 2)
    for first, second in ((0, 1), (1, 0)):
        start = torch.full((1, 2), 3)
        p_first = denoiser(start, t).log_probs.exp()[0, first, :3]
        for a in range(3):
            middle = start.clone()
            middle[0, first] = a
            p_second = denoiser(middle, t).log_probs.exp()[0, second, :3]
            for b in range(3):
                x = torch.zeros(2, dtype=torch.long)
                x[first], x[second] = a, b
                law[state_index(x, 3)] += 0.5 * p_first[a] * p_second[b]
    assert len(states) == 9
    return law


def test_guide_refuses_mixed_outputs():
    with pytest.raises(Exception, match="same kind"):
        guide(Prediction(log_probs=torch.zeros(1, 1, 2)), Prediction(log_score=torch.zeros(1, 1, 2)), 1.0)
