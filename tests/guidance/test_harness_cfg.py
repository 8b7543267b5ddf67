"""cfg_scale in the lm-eval model: scoring is the conditional ELBO of the guided denoiser (context masked in the
unconditional branch), and generation runs guided."""

import pytest
import torch

import dlm
from dlm.data import build_tokenizer
from dlm.eval.likelihood import conditional_elbo
from dlm.guidance import prompt_guidance
from dlm.registry import ConfigError

pytest.importorskip("lm_eval", reason="lm-eval is not installed (pip install 'dlm[eval]')")
from dlm.eval.harness import DLMHarness, request_seed  # noqa: E402

TINY = ["model.d_model=32", "model.n_layers=2", "model.n_heads=2", "model.max_len=32", "data.seq_len=32"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    tokenizer = build_tokenizer("char", ["to be or not to be, that is the question"])
    torch.manual_seed(0)
    model = dlm.DiffusionLM.from_config(dlm.load_config(None, TINY), vocab_size=len(tokenizer), tokenizer=tokenizer)
    path = tmp_path_factory.mktemp("ckpt") / "mdlm"
    model.save_pretrained(path)
    return path


def test_guided_score_is_the_guided_conditional_elbo(checkpoint):
    lm = DLMHarness(pretrained=str(checkpoint), mc_num=8, cfg_scale=1.5, device="cpu")
    context, continuation = lm.tok_encode("to be or"), lm.tok_encode(" not")
    guided, _ = lm.score(context, continuation)
    prefix = [lm.prefix_token_id, *context]
    x0 = torch.tensor([prefix + continuation])
    target = torch.zeros_like(x0, dtype=torch.bool)
    target[:, len(prefix):] = True
    model = lm.model
    generator = torch.Generator().manual_seed(request_seed(0, prefix, continuation))
    expected = conditional_elbo(prompt_guidance(model, 1.5, ~target, model.process.mask_id), model.process, x0,
                                target, n_t=8, generator=generator)
    assert guided == pytest.approx(-float(expected), rel=1e-6)
    plain, _ = DLMHarness(pretrained=str(checkpoint), mc_num=8, device="cpu").score(context, continuation)
    assert plain != pytest.approx(guided, rel=1e-6)
    text = lm.generate_text("to be", {"until": [], "max_gen_toks": 6})
    assert isinstance(text, str)


def test_cfg_scale_needs_a_masked_checkpoint(tmp_path):
    tokenizer = build_tokenizer("char", ["abc"])
    model = dlm.DiffusionLM.from_config(dlm.load_config(None, [*TINY, "objective.name=autoregressive"]),
                                        vocab_size=len(tokenizer), tokenizer=tokenizer)
    model.save_pretrained(tmp_path / "ar")
    with pytest.raises(ConfigError, match="absorbing"):
        DLMHarness(pretrained=str(tmp_path / "ar"), cfg_scale=1.0, device="cpu")
