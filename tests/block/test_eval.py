"""`dlm eval ppl` on block-diffusion models: the objective's own draws on the tokens every family scores; at
block_size = L the masked_elbo bound draw for draw, at block_size = 1 the exact chain rule with no error bar."""

import pytest
import torch

import dlm
from dlm.data import build_tokenizer
from dlm.eval.corpora import EvalTexts
from dlm.eval.zero_shot import make_blocks, zero_shot_perplexity
from dlm.utils.cross_entropy import nll_from_logits

ROWS = ["First Citizen:\nBefore we proceed any further, hear me speak.", "", "All:\nSpeak, speak."] * 6
TEXTS = EvalTexts("toy", "test", ROWS, "inline", "")
TINY = ["model.d_model=32", "model.n_layers=2", "model.n_heads=2", "model.max_len=32", "data.seq_len=32"]


def tiny(objective: str, *extra: str) -> dlm.DiffusionLM:
    tokenizer = build_tokenizer("char", ROWS)
    torch.manual_seed(0)
    cfg = dlm.load_config(None, TINY + [f"objective.name={objective}", *extra])
    return dlm.DiffusionLM.from_config(cfg, vocab_size=len(tokenizer), tokenizer=tokenizer).eval()


def test_block_size_L_reports_the_masked_elbo_bound_on_the_same_tokens():
    block, masked = tiny("block_diffusion", "objective.block_size=32"), tiny("masked_elbo")
    masked.load_state_dict(block.state_dict())
    ours = zero_shot_perplexity(block, TEXTS, n_t=4, progress=False, seed=3)
    theirs = zero_shot_perplexity(masked, TEXTS, estimator="many", n_t=4, progress=False, seed=3)
    assert ours["estimator"] == "objective" and ours["num_tokens"] == theirs["num_tokens"] == 480
    assert ours["nll"] == pytest.approx(theirs["nll"], rel=1e-6) and ours["eps"] == theirs["eps"]
    assert ours["nll_se"] == pytest.approx(theirs["nll_se"], rel=1e-5) and ours["nll_se"] > 0


def test_block_size_1_reports_the_exact_chain_rule():
    model = tiny("block_diffusion", "objective.block_size=1")
    row = zero_shot_perplexity(model, TEXTS, progress=False)
    assert (row["estimator"], row["nll_se"]) == ("exact", 0.0)
    blocks = make_blocks(ROWS, model.tokenizer, 32)
    mask, total = model.objective.mask_id, 0.0
    with torch.no_grad():  # -log p(x^j | x^{<j}) one forward per token, over the scored tokens
        for j in range(32):
            window = torch.cat([blocks.ids[:, :j], torch.full_like(blocks.ids[:, :1], mask)], dim=1)
            nll = nll_from_logits(model.logits(window)[:, -1:], blocks.ids[:, j:j + 1], exclude=mask)[:, 0]
            total += float((nll.double() * blocks.scored[:, j]).sum())
    assert row["nll"] == pytest.approx(total / int(blocks.scored.sum()), rel=1e-5)
