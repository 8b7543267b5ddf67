"""SFT with variable-length answers (dlm/data/sft.py, Objective.loss(condition_mask=)): the prompt is never
corrupted and carries no loss; EOS padding counts only when asked."""

import torch

from dlm.data.sft import read_sft_pairs, responses_until_eos, sft_rows
from tests.tiny_models import tiny_model

EOS = 8
PAIRS = [([1, 2, 3], [4, 5]), ([2], [6, 7, 1, 3]), ([5, 5, 5, 5], [1])]
LENGTH = 10


def recording_logits(model, perturb_prompt: torch.Tensor | None = None):
    """A logits_fn that records (xt, logits) and optionally adds noise to the outputs at the prompt positions."""
    seen = {}

    def logits_fn(xt, t):
        logits = model.logits(xt, t)
        if perturb_prompt is not None:
            noise = torch.randn(logits.shape, generator=torch.Generator().manual_seed(7)) * 50
            logits = torch.where(perturb_prompt.unsqueeze(-1), logits + noise, logits)
        seen.update(xt=xt, logits=logits)
        return logits

    return logits_fn, seen


def sft_loss(model, rows, logits_fn, seed=0):
    return model.objective.loss(logits_fn, rows.ids, rows.scored, generator=torch.Generator().manual_seed(seed),
                                condition_mask=rows.condition_mask)


def test_rows_layout_and_eos_scoring():
    rows = sft_rows(PAIRS, length=LENGTH, eos_id=EOS, count_eos_padding=False)
    assert rows.ids[1].tolist() == [2, 6, 7, 1, 3, EOS, EOS, EOS, EOS, EOS]
    assert rows.condition_mask[1].tolist() == [True] + [False] * 9
    assert rows.scored[1].tolist() == [True] * 6 + [False] * 4  # the first EOS is scored, the padding is not
    counted = sft_rows(PAIRS, length=LENGTH, eos_id=EOS, count_eos_padding=True)
    assert counted.scored.all() and torch.equal(counted.ids, rows.ids)


def test_masked_sft_never_corrupts_or_scores_the_prompt():
    torch.manual_seed(0)
    model = tiny_model("masked_elbo")
    rows = sft_rows(PAIRS, length=LENGTH, eos_id=EOS)
    plain_fn, plain = recording_logits(model)
    noisy_fn, _ = recording_logits(model, perturb_prompt=rows.condition_mask)
    for seed in range(5):
        out = sft_loss(model, rows, plain_fn, seed)
        assert torch.equal(plain["xt"][rows.condition_mask], rows.ids[rows.condition_mask])
        assert (plain["xt"][~rows.condition_mask] == model.mask_id).any()  # the response is noised
        torch.testing.assert_close(sft_loss(model, rows, noisy_fn, seed).loss, out.loss, rtol=0, atol=0)
        assert out.num_tokens.item() == (~rows.condition_mask).sum().item()


def test_ar_sft_leaves_prompt_tokens_unscored():
    torch.manual_seed(0)
    model = tiny_model("autoregressive")
    rows = sft_rows(PAIRS, length=LENGTH, eos_id=EOS)
    predicts_prompt = torch.zeros_like(rows.condition_mask)
    predicts_prompt[:, :-1] = rows.condition_mask[:, 1:]  # output l predicts token l + 1
    plain_fn, _ = recording_logits(model)
    noisy_fn, _ = recording_logits(model, perturb_prompt=predicts_prompt)
    out = sft_loss(model, rows, plain_fn)
    torch.testing.assert_close(sft_loss(model, rows, noisy_fn).loss, out.loss, rtol=0, atol=0)
    assert out.num_tokens.item() == (~rows.condition_mask).sum().item()


def test_eos_padding_counts_only_when_asked():
    torch.manual_seed(0)
    model = tiny_model("masked_elbo")
    counted = sft_rows(PAIRS, length=LENGTH, eos_id=EOS, count_eos_padding=True)
    excluded = sft_rows(PAIRS, length=LENGTH, eos_id=EOS, count_eos_padding=False)
    logits_fn, seen = recording_logits(model)
    full = sft_loss(model, counted, logits_fn)
    xt, logits = seen["xt"], seen["logits"]
    t = model.objective.sample_times(len(PAIRS), generator=torch.Generator().manual_seed(0), device=xt.device)
    per_token = model.objective.integrand(logits, counted.ids, xt, t)
    padding = counted.scored & ~excluded.scored
    part = sft_loss(model, excluded, logits_fn)
    assert padding.sum() > 0 and (xt[padding] == model.mask_id).any()
    torch.testing.assert_close(full.nll_sum - part.nll_sum, per_token[padding].sum().double(), rtol=1e-5, atol=1e-6)
    assert full.num_tokens - part.num_tokens == padding.sum()


def test_generation_stops_at_eos_per_row():
    ids = torch.tensor([[1, 2, 3, EOS, 4, EOS], [1, 5, 6, 7, 2, 3]])
    assert responses_until_eos(ids, [1, 2], EOS) == [[2, 3], [6, 7, 2, 3]]


def test_read_pairs(tmp_path):
    path = tmp_path / "sft.jsonl"
    path.write_text('{"prompt": "2+2=", "response": "4"}\n\n{"prompt": "3*3=", "response": "9"}\n')
    assert read_sft_pairs(path) == [("2+2=", "4"), ("3*3=", "9")]
