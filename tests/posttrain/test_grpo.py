"""diffu-GRPO (dlm/train/rl/): the loss equals a hand computation, advantages are group-centred, the gradient
reduces to REINFORCE, a bandit's expected reward rises monotonically, the one-step estimator is the model's
log-probability given the masked completion, and a resumed run continues the same curve."""

import math
import random

import pytest
import torch

from dlm.tasks.base import Example, Task
from dlm.train.rl.loss import grpo_loss
from dlm.train.rl.rewards import group_advantages
from tests.posttrain.rl_resume import resumed_rl_metrics
from tests.tiny_models import tiny_model


def test_grpo_loss_equals_hand_computation():
    # two completions of two tokens; the second token of completion 1 is outside the completion
    log_probs = torch.tensor([[math.log(0.5), math.log(0.2)], [math.log(0.4), math.log(0.9)]])
    old = torch.tensor([[math.log(0.25), math.log(0.2)], [math.log(0.4), math.log(0.3)]])
    ref = torch.tensor([[math.log(0.5), math.log(0.1)], [math.log(0.6), math.log(0.9)]])
    completion = torch.tensor([[True, True], [True, False]])
    advantages = torch.tensor([1.0, -0.5])
    out = grpo_loss(log_probs, old, ref, advantages, completion, clip_eps=0.5, beta=0.1)
    # token (0,0): rho = 2, A = 1 > 0, clipped at 1.5 -> -1.5; KL = 1 - 0 - 1 = 0
    # token (0,1): rho = 1 -> -1; KL = 0.5 - log 0.5 - 1
    # token (1,0): rho = 1, A = -0.5 -> +0.5; KL = 1.5 - log 1.5 - 1
    kls = [0.0, 0.5 - math.log(0.5) - 1, 1.5 - math.log(1.5) - 1]
    terms = [-1.5 + 0.1 * kls[0], -1.0 + 0.1 * kls[1], 0.5 + 0.1 * kls[2]]
    assert out.loss.item() == pytest.approx(sum(terms) / 3, rel=1e-6)
    assert out.kl == pytest.approx(sum(kls) / 3, rel=1e-6)
    assert out.clip_fraction == pytest.approx(1 / 3)


def test_advantages_zero_mean_per_group_and_zero_on_ties():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.2, 0.5, 2.0])
    advantages = group_advantages(rewards, 3)
    torch.testing.assert_close(advantages.view(3, 3).sum(1), torch.zeros(3), atol=1e-6, rtol=0)
    assert advantages[3:6].eq(0).all()
    torch.testing.assert_close(advantages[:3], torch.tensor([2 / 3, -1 / 3, -1 / 3]))


def model_and_rows(variant: str, rows: int, length: int, prompt: int):
    """A seeded tiny model, random rows (rows, length) and the completion mask: positions >= prompt."""
    torch.manual_seed(0)
    model = tiny_model(variant)
    ids = torch.randint(0, 8, (rows, length), generator=torch.Generator().manual_seed(1))
    completion = torch.zeros_like(ids, dtype=torch.bool)
    completion[:, prompt:] = True
    return model, ids, completion


def test_gradient_is_reinforce_with_group_mean_baseline():
    """beta = 0, mu = 1 (pi_old = stop-grad pi_theta), no clipping: grad = -sum A_i grad sum_k log pi(o_ik) / n_tok."""
    model, ids, completion = model_and_rows("masked_elbo", 6, 7, 3)
    advantages = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 1.0]), 3)

    def gradient(loss_of):
        model.zero_grad()
        log_probs = model.objective.token_log_probs(model.logits, ids, completion, prompt_mask_prob=0.3,
                                                    generator=torch.Generator().manual_seed(2))
        loss_of(log_probs).backward()
        return [p.grad.clone() for p in model.parameters()]

    grpo = gradient(lambda lp: grpo_loss(lp, lp.detach(), None, advantages, completion, clip_eps=math.inf,
                                         beta=0.0).loss)
    reinforce = gradient(lambda lp: -(advantages[:, None] * lp * completion).sum() / completion.sum())
    assert any(g.abs().sum() > 0 for g in grpo)
    for a, b in zip(grpo, reinforce):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_bandit_expected_reward_rises_monotonically_to_the_optimum():
    """One position, a categorical policy over 4 tokens, reward 1 for token 2: diffu-GRPO's updates (groups of 8,
    mu = 2 inner steps, clipping at 0.2, SGD) never lower pi(2) and drive it to the optimum."""
    logits = torch.zeros(4, requires_grad=True)
    optimizer = torch.optim.SGD([logits], lr=0.5)
    generator = torch.Generator().manual_seed(0)
    completion = torch.ones(8, 1, dtype=torch.bool)
    expected = [torch.softmax(logits, 0)[2].item()]
    for _ in range(150):
        with torch.no_grad():
            tokens = torch.multinomial(torch.softmax(logits, 0), 8, replacement=True, generator=generator)
            old = torch.log_softmax(logits, 0)[tokens].unsqueeze(1)
        advantages = group_advantages((tokens == 2).float(), 8)
        for _ in range(2):
            log_probs = torch.log_softmax(logits, 0)[tokens].unsqueeze(1)
            grpo_loss(log_probs, old, None, advantages, completion, clip_eps=0.2, beta=0.0).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            expected.append(torch.softmax(logits, 0)[2].item())
    assert all(b >= a - 1e-7 for a, b in zip(expected, expected[1:]))
    assert expected[0] == pytest.approx(0.25) and expected[-1] > 0.99


def test_one_step_estimator_is_log_prob_given_masked_completion():
    model, ids, completion = model_and_rows("masked_elbo", 3, 9, 4)
    xt = torch.where(completion, model.mask_id, ids)
    with torch.no_grad():
        expected = model(xt, torch.ones(3)).log_probs.gather(-1, ids.unsqueeze(-1)).squeeze(-1)
        got = model.objective.token_log_probs(model.logits, ids, completion, prompt_mask_prob=0.0,
                                              generator=torch.Generator().manual_seed(3))
        all_masked = model(torch.full_like(ids, model.mask_id), torch.ones(3)).log_probs
        masked_prompt = model.objective.token_log_probs(model.logits, ids, completion, prompt_mask_prob=0.999999,
                                                        generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(got[completion], expected[completion], rtol=1e-5, atol=1e-6)
    assert got[~completion].eq(0).all()
    torch.testing.assert_close(masked_prompt[completion],
                               all_masked.gather(-1, ids.unsqueeze(-1)).squeeze(-1)[completion], rtol=1e-5, atol=1e-6)


def test_autoregressive_log_probs_are_exact():
    model, ids, completion = model_and_rows("autoregressive", 3, 9, 4)
    with torch.no_grad():
        got = model.objective.token_log_probs(model.logits, ids, completion)
        nll = model.elbo(ids, attention_mask=completion)
    torch.testing.assert_close(-got.sum(1).double(), nll, rtol=1e-5, atol=1e-6)
    assert got[~completion].eq(0).all()


class OneDigit(Task):
    """A toy task: prompt one digit, answer one digit; correct when the answer is '1'."""

    name, alphabet, prompt_len, answer_len = "one_digit", "0123_", 1, 1

    def check(self, question: str, answer: str) -> bool:
        return answer == "1"

    def sample(self, rng: random.Random) -> Example:
        return Example(str(rng.randint(0, 3)), "1")

    def read(self, path):
        return []


@pytest.mark.parametrize("objective", ["masked_elbo", "autoregressive"])
def test_resumed_rl_run_continues_the_same_curve(tmp_path, objective):
    full = resumed_rl_metrics(OneDigit(), [f"objective.name={objective}"], tmp_path, steps=8)
    assert len(full) == 8 and full[1]["kl"] > 0  # the policy has left the reference before the checkpoint
    assert full[-1]["accuracy"] > full[0]["accuracy"]


def test_rl_command_errors_are_one_line(tmp_path, capsys):
    from dlm.cli import main

    assert main(["rl", "--task", "sudoku4x4", "--checkpoint", str(tmp_path / "none"), "--out-dir",
                 str(tmp_path / "rl")]) == 2
    assert "checkpoint directory not found" in capsys.readouterr().err
    assert main(["rl", "--task", "sudoku4x4", "--checkpoint", str(tmp_path), "--out-dir", str(tmp_path / "rl"),
                 "--steps", "3", "--mu", "2"]) == 2
    assert "multiples of mu=2" in capsys.readouterr().err
