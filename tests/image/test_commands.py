"""`dlm vq train|encode|decode`, `dlm train` on a vqtext: source and `dlm eval images`, end to end on a synthetic
8x8 "mnist" written as IDX files into a temporary DLM_DATA_DIR (no staged data needed)."""

from __future__ import annotations

import gzip
import json
import struct
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dlm.cli import main
from tests.image.conftest import synthetic_images


def _write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for stem, n, seed in (("train", 120, 0), ("t10k", 40, 1)):
        images = synthetic_images(n=n, seed=seed)
        _write_idx(folder / f"{stem}-images-idx3-ubyte.gz", images.images[:, 0].numpy())
        _write_idx(folder / f"{stem}-labels-idx1-ubyte.gz", images.labels.numpy())
    monkeypatch.setenv("DLM_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def test_vq_then_train_then_eval_images(fake_mnist, capsys):
    out = fake_mnist / "vq"
    assert main(["vq", "train", "--data", "mnist", "--codebook", "16", "--downsample", "2", "--hidden", "8",
                 "--code-dim", "4", "--steps", "4", "--batch-size", "16", "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_images"] == 40 and 0 < metrics["mse"] < 1 and 1 <= metrics["code_perplexity"] <= 16
    codec = out / "final"
    assert main(["vq", "encode", "--codec", str(codec), "--data", "mnist", "--split", "test"]) == 0
    codes = codec / "codes" / "mnist-test.safetensors"
    assert main(["vq", "decode", "--codec", str(codec), "--codes", str(codes), "--out", str(fake_mnist / "d.png"),
                 "--num-images", "8"]) == 0
    assert (fake_mnist / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run = fake_mnist / "run"
    assert main(["train", "--config", "configs/runs/mnist_vq_mdlm.yaml", f"data.source=vqtext:{codec}:mnist",
                 "data.seq_len=21", "model.d_model=32", "model.n_layers=1", "model.n_heads=2", "train.steps=2",
                 "train.batch_size=8", "train.eval_batches=1", f"train.out_dir={run}", "train.progress=false"]) == 0
    assert main(["eval", "images", "--checkpoint", str(run / "final"), "--out", str(fake_mnist / "eval"),
                 "--num-samples", "20", "--steps", "4", "--cfg-scales", "0,1", "--caption-images", "15",
                 "--elbo-images", "10", "--n-t", "2", "--batch-size", "10", "--classifier-epochs", "0.5"]) == 0
    result = json.loads((fake_mnist / "eval" / "images.json").read_text())["result"]
    assert [r["cfg_scale"] for r in result["sweep"]] == [0.0, 1.0]
    assert all(0 <= r["accuracy"] <= 1 and r["fd"] >= 0 for r in result["sweep"])
    assert 0 <= result["image_to_caption_accuracy"] <= 1 and result["elbo_per_code"] > 0
    written = {p.name for p in (fake_mnist / "eval").iterdir()}
    assert {"samples_cfg0.png", "samples_cfg1.png", "inpainting.png"} <= written


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["vq", "decode", "--codec", str(tmp_path), "--codes", str(tmp_path / "x.safetensors")]) == 2
    assert "error: " in capsys.readouterr().err
    assert main(["vq", "train", "--data", "cifar", "--out", str(tmp_path / "o")]) == 2
    assert "unknown image dataset 'cifar'" in capsys.readouterr().err


class _Codec:
    """A stand-in codec: identity, or one that decodes every image to black."""

    def __init__(self, blank: bool):
        self.blank = blank

    def encode(self, images):
        return images

    def decode(self, codes):
        return torch.zeros_like(codes) if self.blank else codes


def test_floors_measure_the_codec_against_the_real_split(fake_mnist):
    from dlm.image.datasets import load_images
    from dlm.image.evaluate import floors
    from dlm.image.frechet import ClassifierConfig, FeatureClassifier

    with torch.random.fork_rng():
        torch.manual_seed(0)
        judge = FeatureClassifier(ClassifierConfig(image_size=8)).eval()
    test = load_images("mnist", "test")
    exact = floors(SimpleNamespace(source=SimpleNamespace(dataset="mnist"), codec=_Codec(blank=False)), judge, 30,
                   torch.Generator().manual_seed(0))
    # a lossless codec: reconstructions are the images, so both floors and both accuracies coincide
    assert exact["fd_codec"] == pytest.approx(exact["fd_test_vs_train"], abs=1e-9)
    assert exact["classifier_codec_accuracy"] == exact["classifier_test_accuracy"]
    blank = floors(SimpleNamespace(source=SimpleNamespace(dataset="mnist"), codec=_Codec(blank=True)), judge, 30,
                   torch.Generator().manual_seed(0))
    black_class = int(judge.predict(torch.zeros_like(test.images[:1]))[0])
    assert blank["classifier_codec_accuracy"] == pytest.approx(float((test.labels == black_class).double().mean()))
    assert blank["fd_codec"] > 10 * exact["fd_codec"] and blank["fd_test_vs_train"] == exact["fd_test_vs_train"]
