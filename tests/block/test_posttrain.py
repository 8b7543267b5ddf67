"""Block models in post-training (docs/posttraining.md): SFT keeps the prompt a clean, unscored prefix of the
block-causal two-stream forward, and the one-step per-token log-probability of diffu-GRPO reads each completion
block fully masked after the clean prompt and earlier blocks."""

import random

import pytest
import torch

import dlm
from dlm.data.sft import sft_rows
from dlm.tasks.base import Example, Task
from tests.block.helpers import TINY, assert_same_loss_and_gradients, tiny_block_model, tokens
from tests.posttrain.rl_resume import resumed_rl_metrics

EOS, PAD = 8, 0
PAIRS = [([1, 2, 3], [4, 5]), ([2], [6, 7, 1, 3]), ([5, 5, 5, 5, 5, 5], [1])]
PROMPT = 6  # the prompt ends inside block 1 (blocks of 4): that block mixes clean prompt and noisy response


def rows():
    return sft_rows(PAIRS, prompt_len=PROMPT, length=16, eos_id=EOS, pad_id=PAD)


def recording_logits(model, perturb: torch.Tensor | None = None):
    """A two-stream logits_fn recording the x_t half, optionally adding large noise to the x_t half's outputs at
    the positions `perturb` (B, L)."""
    seen = []

    def logits_fn(tokens, t, **kwargs):
        logits = model.logits(tokens, t, **kwargs)
        L = tokens.shape[1] // 2
        seen.append(tokens[:, :L])
        if perturb is not None:
            noise = torch.randn(logits[:, :L].shape, generator=torch.Generator().manual_seed(7), dtype=logits.dtype)
            logits = torch.cat([torch.where(perturb[..., None], logits[:, :L] + 50 * noise, logits[:, :L]),
                                logits[:, L:]], dim=1)
        return logits

    return logits_fn, seen


def sft_loss(model, sft, logits_fn, seed):
    return model.objective.loss(logits_fn, sft.ids, sft.scored | sft.condition_mask,
                                generator=torch.Generator().manual_seed(seed), condition_mask=sft.condition_mask)


def test_block_sft_never_masks_or_scores_the_prompt():
    model, sft = tiny_block_model(4), rows()
    plain_fn, seen = recording_logits(model)
    perturbed_fn, _ = recording_logits(model, perturb=sft.condition_mask)
    with torch.no_grad():
        for seed in range(5):
            out = sft_loss(model, sft, plain_fn, seed)
            xt = seen[-1]
            assert torch.equal(xt[sft.condition_mask], sft.ids[sft.condition_mask])  # never masked
            assert (xt[~sft.condition_mask] == model.mask_id).any()  # the response is noised
            assert sft_loss(model, sft, perturbed_fn, seed).loss == out.loss  # prompt outputs carry no loss
            assert out.num_tokens.item() == sft.scored.sum().item()
    with torch.no_grad():  # objective.condition_prefix marks the same prompt on every row
        prefixed = tiny_block_model(4, f"objective.condition_prefix={PROMPT}")
        assert prefixed.objective.loss(plain_fn, sft.ids, sft.scored, generator=torch.Generator().manual_seed(0)
                                       ).loss == sft_loss(model, sft, plain_fn, 0).loss


@pytest.mark.parametrize("per_row", [False, True])  # LLaDA's per-row normalisation too (objective.loss_per_row)
def test_block_size_L_sft_loss_is_masked_elbo_sft_loss(per_row):
    extra = [f"objective.loss_per_row={str(per_row).lower()}"]
    block = tiny_block_model(16, *extra).float()
    masked = dlm.DiffusionLM.from_config(dlm.load_config(None, TINY + ["objective.name=masked_elbo", *extra]),
                                         vocab_size=9)
    masked.load_state_dict(block.state_dict())
    sft = sft_rows(PAIRS, prompt_len=PROMPT, length=16, eos_id=EOS, pad_id=PAD,
                   count_eos_padding=not per_row)  # per row: rows of 3, 5 and 2 scored tokens, so the two differ
    assert_same_loss_and_gradients(block, masked, lambda model: model.loss(
        sft.ids, attention_mask=sft.scored, condition_mask=sft.condition_mask,
        generator=torch.Generator().manual_seed(3)))


def completion_of(batch: int, prompt: int = PROMPT) -> torch.Tensor:
    completion = torch.zeros(batch, 16, dtype=torch.bool)
    completion[:, prompt:] = True
    return completion


def test_block_log_probs_without_prompt_masking_read_each_block_masked_after_the_clean_prefix():
    """By hand: block k run alone on [ids before the block, the block with its completion masked] (block-causal,
    positions 0..(k+1)b-1); the SUBS log-probability of each completion token."""
    model = tiny_block_model(4)
    ids, completion = tokens(3), completion_of(3)
    xt = torch.where(completion, model.mask_id, ids)
    expected = torch.zeros(3, 16, dtype=torch.float64)
    with torch.no_grad():
        for start in range(0, 16, 4):
            window = torch.cat([ids[:, :start], xt[:, start:start + 4]], dim=1)
            log_probs = model(window).log_probs[:, start:]
            expected[:, start:start + 4] = log_probs.gather(-1, ids[:, start:start + 4, None])[..., 0]
        got = model.objective.token_log_probs(model.logits, ids, completion, prompt_mask_prob=0.0,
                                              generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(got[completion].double(), expected[completion], rtol=1e-5, atol=1e-6)
    assert got[~completion].eq(0).all()


def test_block_size_L_log_probs_are_masked_elbo_draw_for_draw():
    block = tiny_block_model(16).float()
    masked = dlm.DiffusionLM.from_config(dlm.load_config(None, TINY + ["objective.name=masked_elbo"]), vocab_size=9)
    masked.load_state_dict(block.state_dict())
    ids, completion = tokens(3), completion_of(3)
    with torch.no_grad():
        got = [m.objective.token_log_probs(m.logits, ids, completion, prompt_mask_prob=0.5,
                                           generator=torch.Generator().manual_seed(4)) for m in (block, masked)]
    torch.testing.assert_close(got[0], got[1], rtol=1e-5, atol=1e-6)


class TwoDigits(Task):
    """A toy task: a two-digit prompt, a two-digit answer; correct when the answer starts with '1' (blocks of 2: the
    prompt is block 0, the answer block 1)."""

    name, alphabet, prompt_len, answer_len = "two_digits", "0123_", 2, 2

    def check(self, question: str, answer: str) -> bool:
        return answer[:1] == "1"

    def sample(self, rng: random.Random) -> Example:
        return Example(f"{rng.randint(0, 3)}{rng.randint(0, 3)}", "11")

    def read(self, path):
        return []


def test_rl_on_a_block_model_steps_and_a_resumed_run_continues_the_same_curve(tmp_path):
    full = resumed_rl_metrics(TwoDigits(), ["data.seq_len=4", "objective.name=block_diffusion",
                                            "objective.block_size=2"], tmp_path, steps=4)
    assert len(full) == 4 and full[1]["kl"] > 0  # the policy moved: a step was taken
    start = dlm.DiffusionLM.from_pretrained(str(tmp_path / "sft"))
    final = dlm.DiffusionLM.from_pretrained(str(tmp_path / "full/final"))
    assert any(not torch.equal(a, b) for a, b in zip(start.state_dict().values(), final.state_dict().values()))


@pytest.mark.parametrize("overrides", [["objective.discrete_steps=4"], ["objective.token_reweight_gamma=1"]])
def test_what_block_diffusion_does_not_take_is_still_a_one_line_error(overrides):
    from dlm.registry import ConfigError

    with pytest.raises(ConfigError, match="takes no"):
        tiny_block_model(4, *overrides)


def test_dlm_finetune_trains_a_block_model_on_left_padded_prompts(tmp_path):
    from dlm.cli import main

    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(f'{{"prompt": "{a}+{b}=", "response": "{a + b}"}}' for a in range(0, 40, 3)
                              for b in (1, 22)) + "\n")
    out = tmp_path / "run"
    assert main(["finetune", "--config", "configs/tasks/mdlm.yaml", "--data", str(data),
                 "objective.name=block_diffusion", "objective.block_size=4", "model.d_model=16", "model.n_layers=1",
                 "model.n_heads=2", "data.seq_len=12", "train.steps=2", "train.batch_size=4", "train.eval_batches=1",
                 "train.progress=false", f"train.out_dir={out}"]) == 0
    cfg = dlm.load_config(out / "config.yaml")
    assert (cfg.objective.name, cfg.objective.condition_prefix) == ("block_diffusion", 6)  # "39+22=", mid-block
    model = dlm.DiffusionLM.from_pretrained(str(out / "final"))
    assert model.objective.block_size == 4 and model.objective.cfg.condition_prefix == 6


class FourDigits(TwoDigits):
    """The toy task with a four-digit answer: two answer blocks of 2."""

    name, answer_len = "four_digits", 4


def test_steps_0_is_one_reverse_step_per_answer_token_on_a_block_model_too():
    """The block sampler's steps are per block: task eval's and the RL rollouts' default (steps=0) gives each block
    block_size steps, so the answer's 4 tokens cost 4 ancestral calls plus the clean pass
    of each finished block (not 4 steps per block)."""
    from dlm.sample.nfe import NFECounter
    from dlm.tasks.evaluate import evaluate, solve

    task = FourDigits()
    cfg = dlm.load_config(None, ["model.d_model=16", "model.n_layers=1", "model.n_heads=2", "model.max_len=8",
                                 "data.seq_len=6", "objective.name=block_diffusion", "objective.block_size=2"])
    torch.manual_seed(0)
    model = dlm.DiffusionLM.from_config(cfg, len(task.tokenizer), tokenizer=task.tokenizer)
    counter = NFECounter(model)
    solve(model, task, ["12", "30"], sampler="ancestral", temperature=1.0, denoiser=counter,
          generator=torch.Generator().manual_seed(0))
    assert counter.calls == task.answer_len + 2  # 2 + 2 steps, and the clean passes of blocks 0 and 1
    report = evaluate(model, task, [Example("12", "11"), Example("30", "11")], sampler="ancestral")
    assert report["steps"] == 2  # the steps it ran (per block) are the ones reported
