"""The vq: / vqtext: data source: rows are the codec's codes in raster order, deterministic, shuffled by the
batcher under a seed; `dlm train`'s splits and tokenizer come from it; bad specs fail with one line."""

from __future__ import annotations

import pytest
import torch

from dlm.config import DataConfig
from dlm.data import TokenBatches, build_splits, tokenizer_from_config
from dlm.image.codec import VQCodec
from dlm.image.source import ImageSource
from dlm.image.tokens import CodeSet
from dlm.registry import ConfigError
from tests.image.conftest import synthetic_images


def test_rows_are_the_codes_in_raster_order(codec_dir):
    source = ImageSource.parse(f"vq:{codec_dir / 'codec'}:{codec_dir / 'codes.safetensors'}")
    rows, labels = source.rows()
    codec = VQCodec.from_pretrained(codec_dir / "codec")
    images = synthetic_images()
    assert torch.equal(rows, codec.encode(images.images).flatten(1))  # (B, h*w), row-major
    assert torch.equal(labels, images.labels)
    text = ImageSource.parse(f"vqtext:{codec_dir / 'codec'}:{codec_dir / 'codes.safetensors'}")
    rows_text, _ = text.rows()
    vocab = text.vocabulary()
    layout = vocab.layout(rows_text.shape[1])
    assert torch.equal(vocab.codes(rows_text[:, layout.image_start : layout.image_end]), rows)
    assert vocab.caption_text(rows_text[3, : layout.text_end]) == "a handwritten three"


def test_source_is_deterministic_under_a_seed(codec_dir):
    spec = f"vqtext:{codec_dir / 'codec'}:{codec_dir / 'codes.safetensors'}"
    cfg = DataConfig(source=spec, seq_len=4 * 4 + 2 + 3, val_fraction=0.25)
    first, second = build_splits(cfg, tokenizer_from_config(cfg)), build_splits(cfg, tokenizer_from_config(cfg))
    assert all(torch.equal(a, b) for a, b in zip(first[::2], second[::2])) and first[1] is None
    assert first[0].shape == (30, 21) and first[2].shape == (10, 21)

    def batches(seed):
        return [b["input_ids"] for _, b in zip(range(3), TokenBatches(first[0], batch_size=8, seed=seed))]

    assert all(torch.equal(a, b) for a, b in zip(batches(1), batches(1)))
    assert not all(torch.equal(a, b) for a, b in zip(batches(1), batches(2)))
    assert len(tokenizer_from_config(cfg)) == int(first[0].max()) + 1  # <eoi>, in every row, is the last id


def test_bad_specs_fail_with_one_line(codec_dir):
    with pytest.raises(ConfigError, match="must look like"):
        ImageSource.parse("vq:only-a-codec")
    spec = f"vq:{codec_dir / 'codec'}:{codec_dir / 'codes.safetensors'}"
    with pytest.raises(ConfigError, match="data.seq_len=16"):
        build_splits(DataConfig(source=spec, seq_len=10), None)
    with pytest.raises(ConfigError, match="not a CodecConfig folder"):
        ImageSource.parse(f"vq:{codec_dir}:mnist").vocabulary()
    codes = CodeSet.load(codec_dir / "codes.safetensors")
    CodeSet(codes.codes, codes.labels, codes.class_names, "", 99).save(codec_dir / "other.safetensors")
    with pytest.raises(ConfigError, match="re-encode"):
        ImageSource.parse(f"vq:{codec_dir / 'codec'}:{codec_dir / 'other.safetensors'}").rows()
