"""SFT with variable-length answers (dlm/data/sft.py, Objective.loss(condition_mask=)): the prompt is never
corrupted and carries no loss; EOS padding counts only when asked."""

import json
from dataclasses import replace

import pytest
import torch

import dlm
from dlm.cli import main
from dlm.data.sft import read_sft_pairs, responses_until_eos, sft_rows
from tests.tiny_models import tiny_model

EOS, PAD = 8, 0
PAIRS = [([1, 2, 3], [4, 5]), ([2], [6, 7, 1, 3]), ([5, 5, 5, 5], [1])]
LENGTH, PROMPT = 11, 4


def rows_of(count_eos_padding: bool = True):
    return sft_rows(PAIRS, prompt_len=PROMPT, length=LENGTH, eos_id=EOS, pad_id=PAD,
                    count_eos_padding=count_eos_padding)


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
    """The loss with the prompt marked by condition_mask alone (the attention mask keeps it, as a plain pad-mode
    row would): the objective must drop it."""
    return model.objective.loss(logits_fn, rows.ids, rows.scored | rows.condition_mask,
                                generator=torch.Generator().manual_seed(seed), condition_mask=rows.condition_mask)


def test_rows_layout_and_eos_scoring():
    rows = rows_of(count_eos_padding=False)
    assert rows.ids[1].tolist() == [PAD, PAD, PAD, 2, 6, 7, 1, 3, EOS, EOS, EOS]  # prompt left-padded to 4
    assert rows.condition_mask[1].tolist() == [True] * 4 + [False] * 7
    assert rows.scored[1].tolist() == [False] * 4 + [True] * 5 + [False] * 2  # the first EOS scored, padding not
    counted = rows_of(count_eos_padding=True)
    assert torch.equal(counted.scored, ~counted.condition_mask) and torch.equal(counted.ids, rows.ids)


def test_masked_sft_never_corrupts_or_scores_the_prompt():
    torch.manual_seed(0)
    model = tiny_model("masked_elbo")
    rows = rows_of()
    plain_fn, plain = recording_logits(model)
    noisy_fn, _ = recording_logits(model, perturb_prompt=rows.condition_mask)
    for seed in range(5):
        out = sft_loss(model, rows, plain_fn, seed)
        assert torch.equal(plain["xt"][rows.condition_mask], rows.ids[rows.condition_mask])
        assert (plain["xt"][~rows.condition_mask] == model.mask_id).any()  # the response is noised
        torch.testing.assert_close(sft_loss(model, rows, noisy_fn, seed).loss, out.loss, rtol=0, atol=0)
        assert out.num_tokens.item() == rows.scored.sum().item()


def test_ar_sft_leaves_prompt_tokens_unscored():
    torch.manual_seed(0)
    model = tiny_model("autoregressive")
    rows = rows_of()
    predicts_prompt = torch.zeros_like(rows.condition_mask)
    predicts_prompt[:, :-1] = rows.condition_mask[:, 1:]  # output l predicts token l + 1
    plain_fn, _ = recording_logits(model)
    noisy_fn, _ = recording_logits(model, perturb_prompt=predicts_prompt)
    out = sft_loss(model, rows, plain_fn)
    torch.testing.assert_close(sft_loss(model, rows, noisy_fn).loss, out.loss, rtol=0, atol=0)
    assert out.num_tokens.item() == rows.scored.sum().item()


def test_eos_padding_counts_only_when_asked():
    torch.manual_seed(0)
    model = tiny_model("masked_elbo")
    counted = rows_of(count_eos_padding=True)
    excluded = rows_of(count_eos_padding=False)
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


def per_row(model):
    """The model with LLaDA's per-row normalisation switched on (objective.loss_per_row)."""
    model.objective.cfg = replace(model.objective.cfg, loss_per_row=True)
    return model


def test_per_row_loss_is_llada_normalisation():
    """(1/B) sum_b S_b / n_b with S_b the row's summed per-token terms and n_b its scored tokens (3 rows of 3, 5 and
    2 scored tokens: EOS padding excluded), against the default sum_b S_b / sum_b n_b."""
    torch.manual_seed(0)
    model = tiny_model("masked_elbo")
    rows = rows_of(count_eos_padding=False)
    logits_fn, seen = recording_logits(model)
    pooled = sft_loss(model, rows, logits_fn)
    t = model.objective.sample_times(len(PAIRS), generator=torch.Generator().manual_seed(0), device=rows.ids.device)
    per_token = model.objective.integrand(seen["logits"], rows.ids, seen["xt"], t).double()
    sums, counts = (per_token * rows.scored).sum(1), rows.scored.sum(1)
    assert counts.tolist() == [3, 5, 2]
    out = sft_loss(per_row(model), rows, logits_fn)
    torch.testing.assert_close(out.loss.double(), (sums / counts).mean(), rtol=1e-6, atol=0)
    torch.testing.assert_close(pooled.loss.double(), sums.sum() / counts.sum(), rtol=1e-6, atol=0)
    assert abs(out.loss - pooled.loss) > 1e-3  # the two differ when the rows' lengths differ
    assert out.nll_sum == pooled.nll_sum and out.num_tokens == pooled.num_tokens  # the logged totals are the same


def test_per_row_loss_of_ar_is_the_mean_of_each_row_alone():
    torch.manual_seed(0)
    model = per_row(tiny_model("autoregressive"))
    rows = rows_of(count_eos_padding=False)
    logits_fn, _ = recording_logits(model)
    alone = [sft_loss(model, type(rows)(*(f[i : i + 1] for f in (rows.ids, rows.scored, rows.condition_mask))),
                      logits_fn).loss for i in range(len(PAIRS))]
    torch.testing.assert_close(sft_loss(model, rows, logits_fn).loss, torch.stack(alone).mean(), rtol=1e-6, atol=0)


def test_generation_stops_at_eos_per_row():
    ids = torch.tensor([[1, 2, 3, EOS, 4, EOS], [1, 5, 6, 7, 2, 3], [1, 1, EOS, EOS, EOS, EOS]])
    assert responses_until_eos(ids, 1, EOS) == [[2, 3], [5, 6, 7, 2, 3], [1]]


def test_read_pairs(tmp_path):
    path = tmp_path / "sft.jsonl"
    path.write_text('{"prompt": "2+2=", "response": "4"}\n\n{"prompt": "3*3=", "response": "9"}\n')
    assert read_sft_pairs(path) == [("2+2=", "4"), ("3*3=", "9")]


def test_finetune_command_trains_on_left_padded_prompts(tmp_path):
    data = tmp_path / "pairs.jsonl"
    lines = [f'{{"prompt": "{a}+{b}=", "response": "{a + b}"}}' for a in range(0, 40, 3) for b in (1, 22)]
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    args = ["finetune", "--config", "configs/tasks/mdlm.yaml", "--data", str(data), "--exclude-eos-padding",
            "model.d_model=16", "model.n_layers=1", "model.n_heads=2", "data.seq_len=12", "train.steps=2",
            "train.batch_size=4", "train.eval_batches=1", "train.progress=false", f"train.out_dir={out}"]
    assert main(args) == 0
    cfg = dlm.load_config(out / "config.yaml")
    assert cfg.objective.condition_prefix == 6  # the longest prompt, "39+22="
    assert cfg.data.source.endswith(":6:no_eos_padding")
    train_ids, scored, _, _ = dlm.data.build_splits(cfg.data, dlm.data.tokenizer_from_config(cfg.data))
    tokenizer = dlm.data.tokenizer_from_config(cfg.data)
    assert tokenizer.decode(train_ids[0, :6].tolist(), skip_special_tokens=True) == "0+1="
    assert train_ids[0, :2].eq(tokenizer.pad_token_id).all()  # "0+1=" left-padded to 6
    assert scored[0].tolist() == [False] * 6 + [True] * 2 + [False] * 4  # "1", EOS; the EOS padding left out


@pytest.mark.parametrize("config", ["mdlm", "ar"])
def test_sample_prompts_left_pads_like_finetune_and_stops_at_eos(tmp_path, config, capsys):
    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(f'{{"prompt": "{a}+{b}=", "response": "{a + b}"}}' for a in range(0, 40, 3)
                              for b in (1, 22)) + "\n")
    out = tmp_path / "run"
    assert main(["finetune", "--config", f"configs/tasks/{config}.yaml", "--data", str(data), "model.d_model=16",
                 "model.n_layers=1", "model.n_heads=2", "data.seq_len=12", "train.steps=30", "train.batch_size=8",
                 "train.eval_batches=1", "train.progress=false", f"train.out_dir={out}"]) == 0
    prompts, samples = tmp_path / "prompts.jsonl", tmp_path / "samples.jsonl"
    prompts.write_text('{"prompt": "3+1="}\n{"prompt": "39+22=", "response": "61"}\n{"prompt": "9+9="}\n')
    assert main(["sample", "--checkpoint", str(out / "final"), "--prompts", str(prompts), "--steps", "6",
                 "--temperature", "0", "--sampler", "confidence", "--out", str(samples)]) == 0
    tokenizer = dlm.DiffusionLM.from_pretrained(str(out / "final")).tokenizer
    eos = tokenizer.eos_token_id
    records = [json.loads(line) for line in samples.read_text().splitlines()]
    assert [r["prompt"] for r in records] == ["3+1=", "39+22=", "9+9="]
    stopped = 0
    for record in records:
        prompt = tokenizer(record["prompt"], add_special_tokens=False)["input_ids"]
        tokens = record["tokens"]
        assert len(tokens) == 12 and tokens[:6] == [tokenizer.pad_token_id] * (6 - len(prompt)) + prompt
        generated = tokens[6:]
        completion = generated[: generated.index(eos)] if eos in generated else generated
        stopped += eos in generated and len(completion) < len(generated) - 1
        assert record["text"] == tokenizer.decode(completion)
    assert stopped  # some row stopped at an EOS before the end of the row
    assert records[0]["text"] in capsys.readouterr().out
    prompts.write_text('{"prompt": "391+222="}\n')
    assert main(["sample", "--checkpoint", str(out / "final"), "--prompts", str(prompts)]) == 2
    assert "is 8 tokens" in capsys.readouterr().err
