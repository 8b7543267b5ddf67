"""Conditional tasks through generate(prompt=, prompt_mask=): text->image keeps the caption and markers, image->text
and inpainting keep the codes they are given, for masked, uniform, SEDD and AR models; held-out bounds are finite
and the AR one is exact."""

from __future__ import annotations

import pytest
import torch

import dlm
from dlm.image.codec import VQCodec
from dlm.image.image_model import ImageModel
from dlm.image.source import ImageSource

FAMILIES = {"mdlm": "masked_elbo", "udlm": "uniform_elbo", "sedd": "score_entropy", "ar": "autoregressive"}


def _image_model(codec_dir, family: str) -> ImageModel:
    source = ImageSource.parse(f"vqtext:{codec_dir / 'codec'}:{codec_dir / 'codes.safetensors'}")
    vocab = source.vocabulary()
    rows, _ = source.rows()
    cfg = dlm.load_config(None, ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.cond_dim=16",
                                 f"model.max_len={rows.shape[1]}", f"data.seq_len={rows.shape[1]}",
                                 f"data.source={source}", f"objective.name={FAMILIES[family]}"])
    torch.manual_seed(0)
    model = dlm.DiffusionLM.from_config(cfg, len(vocab), tokenizer=vocab.tokenizer()).eval()
    return ImageModel(model, source, vocab, vocab.layout(rows.shape[1]), VQCodec.from_pretrained(codec_dir / "codec"))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_clamped_positions_survive(codec_dir, family):
    im = _image_model(codec_dir, family)
    rows, labels = im.source.rows()
    rows, labels = rows[:4], labels[:4]
    gen = torch.Generator().manual_seed(0)
    captions = im.caption_rows(labels)
    keep = ~im.layout.mask("image")
    out = im.generate(captions, keep, steps=4, generator=gen)
    assert torch.equal(out[:, keep[0]], captions[:, keep[0]])  # text->image: caption and markers clamped
    assert im.text_to_image(labels, steps=4, generator=gen).shape == (4, 1, 8, 8)
    if not im.model.objective.causal:
        keep = ~im.layout.mask("caption")
        out = im.generate(rows, keep, steps=4, generator=gen, final="argmax")
        assert torch.equal(out[:, keep[0]], rows[:, keep[0]])  # image->text: codes clamped
    predicted = im.image_to_text(rows, n_t=2, generator=torch.Generator().manual_seed(1))
    assert predicted.shape == (4,) and bool(((predicted >= 0) & (predicted < 10)).all())  # always one of the K
    assert torch.equal(predicted, im.image_to_text(rows, n_t=2, generator=torch.Generator().manual_seed(1)))
    nll = im.code_nll(rows, n_t=2, generator=gen)
    assert nll.shape == (4,) and bool(torch.isfinite(nll).all()) and bool((nll > 0).all())


def test_inpainting_keeps_the_top_half(codec_dir):
    im = _image_model(codec_dir, "mdlm")
    rows, _ = im.source.rows()
    keep_codes = torch.zeros(3, 16, dtype=torch.bool)
    keep_codes[:, :8] = True
    keep = torch.zeros_like(rows[:3], dtype=torch.bool)
    keep[:, im.layout.image_start : im.layout.image_end] = keep_codes
    out = im.generate(rows[:3], keep | ~im.layout.mask("image"), steps=4, generator=torch.Generator().manual_seed(0))
    image = slice(im.layout.image_start, im.layout.image_end)
    assert torch.equal(out[:, image][:, :8], rows[:3, image][:, :8])


def test_ar_code_nll_is_the_exact_conditional(codec_dir):
    im = _image_model(codec_dir, "ar")
    rows, _ = im.source.rows()
    row = rows[:1]
    with torch.no_grad():
        log_probs = im.model(row).log_probs[0, :-1].double()  # position l predicts token l + 1
    targets = row[0, 1:]
    per_token = -log_probs.gather(-1, targets[:, None])[:, 0]
    image = im.layout.mask("image")[0, 1:]
    assert im.code_nll(row).item() == pytest.approx(float(per_token[image].sum()), rel=1e-6)


def test_dice_reconstruction_under_the_same_caption_is_exact(codec_dir):
    im = _image_model(codec_dir, "mdlm")
    rows, labels = im.source.rows()
    rows, labels = rows[:4], labels[:4]
    out = im.edit_caption(rows, labels, steps=6, tau=0.9, lambda1=1.0, lambda2=0.0,
                          generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, rows)  # lambda1 = 1, lambda2 = 0, same caption: the codes come back exactly
    edited = im.edit_caption(rows, (labels + 1) % 10, steps=6, tau=0.9, generator=torch.Generator().manual_seed(0))
    image = im.layout.mask("image")[0]
    assert torch.equal(edited[:, ~image], rows[:, ~image])  # caption and markers untouched: only codes change


@pytest.mark.parametrize("family", ["mdlm", "udlm", "sedd"])
def test_image_to_text_is_exact_for_a_masked_model_that_ignores_t(codec_dir, family):
    """MDLM sums the caption's bound over every mask pattern: no Monte Carlo, so the seed cannot change the answer,
    and the answer is the argmin of the per-caption masked_conditional_nll (others keep the n_t estimate)."""
    from dlm.eval.likelihood import masked_conditional_nll
    im = _image_model(codec_dir, family)
    rows = im.source.rows()[0][:8]
    assert im.exact_caption_bound() == (family == "mdlm")
    if family != "mdlm":
        return
    runs = [im.image_to_text(rows, n_t=1, generator=torch.Generator().manual_seed(s)) for s in range(3)]
    assert all(torch.equal(runs[0], r) for r in runs)
    caption = im.layout.mask("caption")[0]
    nll = []
    for text in im.captions():
        candidate = rows.clone()
        candidate[:, : im.layout.text_end] = im.vocab.caption_ids(text)
        nll.append(masked_conditional_nll(im.model, im.model.process, candidate, caption))
    assert torch.equal(runs[0], torch.stack(nll, 1).argmin(1))
