"""Fixtures for the image tests: a tiny codec saved to disk and a code file of synthetic images, so nothing needs
../shared/data; tests that read the real data skip with a reason when it is absent."""

from __future__ import annotations

import pytest
import torch

from dlm.data.paths import data_dir

pytest.importorskip("vector_quantize_pytorch", reason="the image tests need dlm[image] (vector-quantize-pytorch)")

from dlm.image.codec import CodecConfig, VQCodec  # noqa: E402
from dlm.image.datasets import DIGITS, ImageSet  # noqa: E402
from dlm.image.tokens import encode_images  # noqa: E402

TINY = CodecConfig(image_size=8, codebook_size=16, downsample=2, hidden=8, code_dim=4, kmeans_init=False)


def needs_data(folder: str):
    """Skip unless ../shared/data/<folder> (or $DLM_DATA_DIR/<folder>) exists."""
    path = data_dir() / folder
    return pytest.mark.skipif(not path.is_dir(), reason=f"needs the staged dataset {path}")


def synthetic_images(n: int = 40, size: int = 8, seed: int = 0) -> ImageSet:
    """n uint8 images of a bright square whose position depends on the label (10 classes)."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    images = (torch.rand(n, 1, size, size, generator=gen) * 40).to(torch.uint8)
    for i, y in enumerate(labels.tolist()):
        r, c = divmod(y, 4)
        images[i, 0, r * 2 : r * 2 + 3, c * 2 : c * 2 + 3] = 255
    return ImageSet(images, labels, DIGITS, "a handwritten")


@pytest.fixture
def codec_dir(tmp_path):
    """A tiny random codec in tmp_path/codec and the synthetic set's codes in tmp_path/codes.safetensors."""
    torch.manual_seed(0)
    codec = VQCodec(TINY).eval()
    codec.save_pretrained(tmp_path / "codec")
    codes = encode_images(codec, synthetic_images(), progress=False, dataset="synthetic", split="train")
    codes.save(tmp_path / "codes.safetensors")
    return tmp_path
