"""Conditional tasks through generate(prompt=, prompt_mask=): text->image keeps the caption and markers, image->text
and inpainting keep the codes they are given, for masked, uniform, SEDD and AR models. Values, on models whose answer
is known (a hook on the logits) or recomputed by brute force: text->image draws the codes the caption calls for,
image->text is the likelihood argmin over captions, and code_nll is 16 log V for an uninformed model (exact for AR)."""

from __future__ import annotations

import itertools
import math

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
    if not im.model.objective.causal:
        keep = ~im.layout.mask("caption")
        out = im.generate(rows, keep, steps=4, generator=gen, final="argmax")
        assert torch.equal(out[:, keep[0]], rows[:, keep[0]])  # image->text: codes clamped


def _class_words(im: ImageModel) -> torch.Tensor:
    """(K,) the token id of each class's word: the last caption token, the only one the K captions differ in."""
    words = torch.stack([im.vocab.caption_ids(text)[-1] for text in im.captions()])
    assert len(set(words.tolist())) == len(words)
    return words


def _favour(im: ImageModel, choose, strength: float) -> torch.utils.hooks.RemovableHandle:
    """Make the model prefer, at every position, the token choose(tokens) (B,) -> (B,) picks from its input: its
    backbone's logits get +strength there. A model whose answer is known, for every family's parameterization."""
    def hook(module, args, logits):
        favoured = choose(args[0])
        bump = torch.zeros_like(logits)
        bump[torch.arange(len(favoured)), :, favoured] = strength
        return logits + bump
    return im.model.backbone.register_forward_hook(hook)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_text_to_image_draws_the_codes_a_caption_reading_model_favours(codec_dir, family):
    """A model that reads the class word in the caption and puts almost all mass on one code per class: the codes
    generated under each caption are that code everywhere (so the caption was clamped and read), and text_to_image
    returns the codec's decoding of exactly those rows."""
    im = _image_model(codec_dir, family)
    words, labels = _class_words(im), torch.tensor([3, 7, 3, 0])
    image = slice(im.layout.image_start, im.layout.image_end)
    code_of_class = im.vocab.rows(torch.arange(10)[:, None].expand(10, 16), im.captions())[:, im.layout.image_start]
    to_class = torch.full((int(words.max()) + 1,), 0).index_put_((words,), torch.arange(10))

    def favoured_code(tokens):
        if tokens.shape[1] < im.layout.text_end:  # cached AR decoding feeds the new token alone: repeat that code
            return tokens[:, -1]
        word = tokens[:, im.layout.text_end - 1]
        return code_of_class[to_class[word.clamp_max(len(to_class) - 1)]]

    expected = im.caption_rows(labels)
    expected[:, image] = code_of_class[labels][:, None]
    decoded = []  # the rows text_to_image hands to the codec (the tiny random codec maps most codes to ~0)
    im.decode = lambda rows: decoded.append(rows) or ImageModel.decode(im, rows)
    with _favour(im, favoured_code, strength=25.0):
        images = im.text_to_image(labels, steps=4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(decoded[0], expected)
    assert torch.allclose(images, ImageModel.decode(im, expected))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_image_to_text_picks_the_caption_a_code_reading_model_favours(codec_dir, family):
    """A model that reads the codes and favours the word of class (sum of the code tokens) mod 10: image->text,
    a likelihood argmin over the captions, must return exactly that class for every row, for every family."""
    im = _image_model(codec_dir, family)
    rows = im.source.rows()[0][:10]
    image = slice(im.layout.image_start, im.layout.image_end)
    words = _class_words(im)
    known = rows[:, image].sum(-1) % 10
    assert len(known.unique()) >= 3  # the answer depends on the image
    with _favour(im, lambda tokens: words[tokens[:, image].sum(-1) % 10], strength=8.0):
        for seed in range(2):
            assert torch.equal(im.image_to_text(rows, n_t=16, generator=torch.Generator().manual_seed(seed)), known)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_code_nll_of_an_uninformed_model_is_16_log_v(codec_dir, family):
    """A model with a zero output head predicts every code uniformly over the V = 31 tokens: its -log p(codes |
    caption) is 16 log 31 exactly (AR), in expectation (masked, SEDD: the masked integrand's time integral is
    1 - alpha(1) per code), or at least that (uniform noise: a bound on the model's own uniform law)."""
    im = _image_model(codec_dir, family)
    rows = im.source.rows()[0][:4]
    with torch.no_grad():
        im.model.backbone.head.weight.zero_()
        im.model.backbone.head.bias.zero_()
    nll = im.code_nll(rows, n_t=1024, generator=torch.Generator().manual_seed(0))
    target = 16 * math.log(31)
    if family == "ar":
        assert nll == pytest.approx(torch.full((4,), target, dtype=nll.dtype), rel=1e-6)
    elif family == "udlm":
        assert float(nll.mean()) > 0.98 * target
    else:
        assert float(nll.mean()) == pytest.approx(target, rel=0.02)


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


WEAK = 0.15  # logits: a pull that leaves the random model's own preferences in play


def _brute_force_masked_bound(model, row: torch.Tensor, positions: list[int]) -> float:
    """The masked bound on -log p(row[positions] | the rest) of a model that ignores t, summed over every mask
    pattern M of the positions: sum_{k=1}^{n} (1/k) mean_{|M| = k} sum_{l in M} -log x_theta(row^l | row, M masked)
    (the time integral done by hand: M ~ Bern(1 - alpha_t)^n and weight -alpha'_t / (1 - alpha_t))."""
    n, total = len(positions), 0.0
    for k in range(1, n + 1):
        patterns = list(itertools.combinations(positions, k))
        for masked in patterns:
            xt = row.clone()
            xt[list(masked)] = model.process.mask_id
            with torch.no_grad():
                log_probs = model(xt[None], torch.tensor([0.5])).log_probs[0].double()
            total += sum(-float(log_probs[pos, row[pos]]) for pos in masked) / (k * len(patterns))
    return total


def _candidates(im: ImageModel, row: torch.Tensor) -> list[torch.Tensor]:
    out = []
    for text in im.captions():
        candidate = row.clone()
        candidate[: im.layout.text_end] = im.vocab.caption_ids(text)
        out.append(candidate)
    return out


def test_masked_image_to_text_is_the_argmin_of_the_brute_force_exact_bound(codec_dir):
    """MDLM without time conditioning: image->text is the argmin over captions of the caption's masked bound summed
    over every mask pattern, recomputed here by hand; no Monte Carlo, so neither n_t nor the seed matters. (The
    random model gets a weak pull towards a code-dependent word, so that the answers differ between rows.)"""
    im = _image_model(codec_dir, "mdlm")
    rows = im.source.rows()[0][:8]
    assert im.exact_caption_bound()
    positions = im.layout.mask("caption")[0].nonzero()[:, 0].tolist()
    image, words = slice(im.layout.image_start, im.layout.image_end), _class_words(im)
    with _favour(im, lambda tokens: words[tokens[:, image].sum(-1) % 10], strength=WEAK):
        expected = []
        for row in rows:
            nll = [_brute_force_masked_bound(im.model, candidate, positions) for candidate in _candidates(im, row)]
            expected.append(min(range(10), key=nll.__getitem__))
        expected = torch.tensor(expected)
        assert len(expected.unique()) >= 2
        for seed in range(2):
            assert torch.equal(im.image_to_text(rows, n_t=1, generator=torch.Generator().manual_seed(seed)), expected)


def test_autoregressive_image_to_text_is_the_argmin_of_the_exact_joint_nll(codec_dir):
    """AR (caption before image): image->text is the argmin over captions of the exact -log p(caption, codes),
    the chain rule summed here from one forward per candidate (with the weak code-dependent pull, as above)."""
    im = _image_model(codec_dir, "ar")
    rows = im.source.rows()[0][:8]
    image, words = slice(im.layout.image_start, im.layout.image_end), _class_words(im)
    with _favour(im, lambda tokens: words[tokens[:, image].sum(-1) % 10], strength=WEAK):
        expected = []
        for row in rows:
            nll = []
            for candidate in _candidates(im, row):
                with torch.no_grad():
                    log_probs = im.model(candidate[None]).log_probs[0, :-1].double()  # position l predicts l + 1
                nll.append(-float(log_probs.gather(-1, candidate[1:, None]).sum()))
            expected.append(min(range(10), key=nll.__getitem__))
        assert len(set(expected)) >= 2
        assert torch.equal(im.image_to_text(rows), torch.tensor(expected))
