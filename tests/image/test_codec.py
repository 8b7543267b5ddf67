"""The VQ codec: encode -> decode shapes and ranges, save/load round trip, and a tiny codec that overfits a few
images (the reconstruction error falls far below that of the untrained codec)."""

from __future__ import annotations

import shutil

import pytest
import torch

from dlm.image.codec import CodecConfig, VQCodec
from dlm.image.codec_trainer import CodecTraining, reconstruction_metrics, train_codec
from dlm.image.tokens import code_perplexity
from dlm.registry import ConfigError
from tests.image.conftest import TINY, synthetic_images


def test_encode_decode_shapes_and_round_trip(tmp_path):
    torch.manual_seed(0)
    codec = VQCodec(CodecConfig(image_size=28, codebook_size=32, downsample=4, hidden=8, code_dim=4)).eval()
    images = (torch.rand(5, 1, 28, 28) * 255).to(torch.uint8)
    codes = codec.encode(images)
    assert codes.shape == (5, 7, 7) and codes.dtype == torch.long
    assert 0 <= int(codes.min()) and int(codes.max()) < 32
    decoded = codec.decode(codes)
    assert decoded.shape == (5, 1, 28, 28) and 0 <= float(decoded.min()) and float(decoded.max()) <= 1
    torch.testing.assert_close(codec.decode(codes.flatten(1)), decoded)  # (B, h*w) rows decode the same
    codec.save_pretrained(tmp_path / "c")
    loaded = VQCodec.from_pretrained(tmp_path / "c")
    assert torch.equal(loaded.encode(images), codes)
    torch.testing.assert_close(loaded.decode(codes), decoded)
    with pytest.raises(ConfigError, match="codes must lie"):
        codec.decode(torch.full((1, 7, 7), 32))
    with pytest.raises(ConfigError, match="power of 2"):
        CodecConfig(image_size=28, downsample=3).check()


def test_tiny_codec_overfits_a_few_images(tmp_path):
    images = synthetic_images(n=10)
    torch.manual_seed(0)
    before = reconstruction_metrics(VQCodec(TINY), images)["mse"]
    training = CodecTraining(steps=150, batch_size=10, lr=1e-2, save_every=75, progress=False)
    codec = train_codec(TINY, images, tmp_path / "run", training)
    after = reconstruction_metrics(codec, images)
    assert after["mse"] < 0.1 * before and after["psnr_db"] > 20
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
    reloaded = VQCodec.from_pretrained(tmp_path / "run" / "final")
    assert torch.equal(reloaded.encode(images.images), codec.encode(images.images))
    with pytest.raises(ConfigError, match="--resume"):
        train_codec(TINY, images, tmp_path / "run", training)


def test_codec_resume_falls_back_past_a_corrupt_state_and_continues_the_same_run(tmp_path):
    """A killed codec run resumes as `dlm train` does: --resume on an empty folder starts fresh, and a corrupt
    newest trainer state falls back to the previous checkpoint; the final weights equal an uninterrupted run's."""
    images = synthetic_images(n=10)
    training = CodecTraining(steps=40, batch_size=10, lr=1e-2, save_every=10, progress=False)
    straight = train_codec(TINY, images, tmp_path / "straight", training)
    run = tmp_path / "resumed"
    train_codec(TINY, images, run, training, resume=True)  # nothing to resume yet: a fresh start
    steps = sorted((run / "checkpoints").glob("step_*"))
    (steps[-1] / "trainer_state.pt").write_bytes(b"truncated")  # the newest state is corrupt
    shutil.rmtree(run / "final")
    with pytest.warns(UserWarning, match="resuming from the newest earlier checkpoint"):
        resumed = train_codec(TINY, images, run, training, resume=True)
    for name, weight in straight.state_dict().items():
        assert torch.equal(weight, resumed.state_dict()[name]), name


def test_code_perplexity_is_exp_entropy():
    uniform = code_perplexity(torch.arange(8).repeat(3), 8)
    assert uniform["code_perplexity"] == pytest.approx(8.0) and uniform["codes_used"] == 1.0
    half = code_perplexity(torch.tensor([0, 0, 1, 1]), 4)
    assert half["code_perplexity"] == pytest.approx(2.0) and half["codes_used"] == 0.5
