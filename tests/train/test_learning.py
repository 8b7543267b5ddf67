"""A short run on the bundled Tiny Shakespeare lowers the validation bound well below a uniform guess, log V;
metrics go to metrics.jsonl (and TensorBoard when asked for and installed); in pad mode the padding carries no loss
and no gradient."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from dlm.config import load_config
from dlm.diffusion_lm import DiffusionLM
from dlm.registry import ConfigError
from dlm.train import train
from dlm.train.log import METRICS_FILE, read_metrics
from tests.tiny_models import tiny_model
from tests.train.conftest import tiny_run


def test_short_run_beats_the_uniform_bound(tmp_path):
    cfg = load_config(None, [
        "model=tiny", "data.source=tinyshakespeare", "data.tokenizer=char", "data.seq_len=64",
        "train.steps=40", "train.batch_size=16", "train.lr=2e-3", "train.warmup_steps=4", "train.eval_every=20",
        "train.eval_batches=4", "train.log_every=10", "train.save_every=0", "train.progress=false",
        f"train.out_dir={tmp_path}",
    ])
    summary = train(cfg)
    assert summary["uniform_nll"] == math.log(69)  # 65 characters + bos, eos, pad, unk
    assert summary["val_nll"] < summary["uniform_nll"] - 0.7
    assert math.isclose(summary["val_ppl"], math.exp(summary["val_nll"]))
    records = read_metrics(tmp_path / METRICS_FILE)
    assert [r["step"] for r in records] == [10, 20, 30, 40]
    assert {"loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s"} <= records[0].keys()
    assert records[-1]["val_nll"] == summary["val_nll"] < records[1]["val_nll"]
    final = DiffusionLM.from_pretrained(summary["final_dir"])
    assert final.tokenizer.decode(final.tokenizer.encode("ROMEO:")) == "ROMEO:"


def test_tensorboard_is_optional(tmp_path, small_corpus):
    cfg = load_config(None, tiny_run(tmp_path, small_corpus, "train.steps=2", "train.tensorboard=true"))
    if importlib.util.find_spec("tensorboard") is None:
        with pytest.raises(ConfigError, match="pip install tensorboard"):
            train(cfg)
    else:
        train(cfg)
        assert any((tmp_path / "tensorboard").iterdir())


def test_pad_mode_trains_on_padded_rows(tmp_path, small_corpus):
    """One document per row (pad mode) end to end: losses and the bound stay finite and beat a loose bound."""
    cfg = load_config(None, tiny_run(tmp_path, small_corpus, "data.mode=pad", "train.steps=3", "train.grad_accum=2"))
    summary = train(cfg)
    assert math.isfinite(summary["val_nll"]) and math.isfinite(summary["train_loss"])
    assert summary["val_nll"] < summary["uniform_nll"] + 1.0


def _padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """x0 (4, 12) with right padding after 12, 9, 5 and 2 real tokens; mask (4, 12) True on the real ones."""
    x0 = torch.randint(0, 9, (4, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.arange(12) < torch.tensor([12, 9, 5, 2])[:, None]
    return x0, mask


def _seeded_loss(model, x0, mask, noise_on=None):
    """(LossOutput, parameter gradients) of one seeded loss + backward; noise_on (B, L) bool: those backbone outputs
    get random values (sd 5) added, so anything read from them would change."""
    hook = None
    if noise_on is not None:
        noise = 5 * torch.randn(*x0.shape, model.backbone.vocab_out, generator=torch.Generator().manual_seed(2))
        hook = model.backbone.register_forward_hook(
            lambda module, args, out: out + torch.where(noise_on[..., None], noise, 0.0))
    out = model.loss(x0, attention_mask=mask, generator=torch.Generator().manual_seed(1))
    model.zero_grad()
    out.loss.backward()
    if hook is not None:
        hook.remove()
    return out, [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("variant", ["masked_elbo", "uniform_elbo", "score_entropy", "autoregressive"])
def test_padding_carries_no_loss_and_no_gradient(variant):
    """Pad mode's attention mask (what the training loop passes to DiffusionLM.loss): the loss is the mean over the
    real tokens only (num_tokens counts no pad), and whatever the model outputs for padded positions (for AR: the
    outputs that predict a pad) changes neither the loss nor any gradient."""
    torch.manual_seed(0)
    model = tiny_model(variant)
    x0, mask = _padded_batch()
    scored = mask.clone()
    if variant == "autoregressive":  # output l predicts token l + 1; token 0 is context
        scored = torch.cat([mask[:, 1:], torch.zeros_like(mask[:, :1])], 1)
    out, grads = _seeded_loss(model, x0, mask)
    assert int(out.num_tokens) == int(scored.sum()) < x0.numel()
    assert out.loss.item() == pytest.approx(float(out.nll_sum) / int(scored.sum()), rel=1e-6)
    noisy, noisy_grads = _seeded_loss(model, x0, mask, noise_on=~scored)
    assert noisy.loss.item() == out.loss.item() and float(noisy.nll_sum) == float(out.nll_sum)
    assert all(torch.equal(g, n) for g, n in zip(grads, noisy_grads))
    assert any(g.abs().sum() > 0 for g in grads)
    real, real_grads = _seeded_loss(model, x0, mask, noise_on=scored)  # control: the real outputs do count
    assert real.loss.item() != out.loss.item() and not all(torch.equal(g, n) for g, n in zip(grads, real_grads))


def test_autoregressive_loss_ignores_the_token_ids_under_padding():
    """Causal attention and right padding: no real token sees a pad, so replacing the ids under padding leaves the
    loss and every gradient identical. (Bidirectional families read the pads as context, as MDLM's reference does.)"""
    torch.manual_seed(0)
    model = tiny_model("autoregressive")
    x0, mask = _padded_batch()
    other = torch.where(mask, x0, (x0 + 1 + torch.arange(12)) % 9)
    out, grads = _seeded_loss(model, x0, mask)
    changed, changed_grads = _seeded_loss(model, other, mask)
    assert changed.loss.item() == out.loss.item() and int(changed.num_tokens) == int(mask[:, 1:].sum())
    assert all(torch.equal(g, n) for g, n in zip(grads, changed_grads))


@pytest.mark.parametrize("variant", ["masked_elbo", "uniform_elbo", "score_entropy"])
def test_huge_outputs_at_padding_stay_out_of_the_loss(variant):
    """Padding is selected out of the loss, not multiplied by 0: outputs of +100 at padded positions (where score
    entropy's exp overflows to inf in float32) leave the loss and every gradient finite and equal to the clean run."""
    torch.manual_seed(0)
    model = tiny_model(variant)
    x0, mask = _padded_batch()
    out, grads = _seeded_loss(model, x0, mask)
    hook = model.backbone.register_forward_hook(lambda module, args, y: y + torch.where(~mask[..., None], 100.0, 0.0))
    huge, huge_grads = _seeded_loss(model, x0, mask)
    hook.remove()
    assert torch.isfinite(huge.loss) and huge.loss.item() == pytest.approx(out.loss.item(), rel=1e-6)
    for grad, huge_grad in zip(grads, huge_grads):
        assert torch.isfinite(huge_grad).all() and torch.allclose(grad, huge_grad, rtol=1e-5, atol=1e-7)
