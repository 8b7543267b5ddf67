"""Fréchet distance in a local classifier's features: ~0 for a set against itself, growing with added noise;
torchmetrics' statistic agrees with the closed form for the same features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("torchmetrics", reason="the Fréchet distance needs dlm[image] (torchmetrics)")

from dlm.image.frechet import ClassifierConfig, FeatureClassifier, frechet_distance, train_classifier  # noqa: E402
from tests.image.conftest import synthetic_images  # noqa: E402


def _closed_form(a: np.ndarray, b: np.ndarray) -> float:
    from scipy import linalg

    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def test_fd_of_a_set_with_itself_is_zero_and_grows_with_noise():
    torch.manual_seed(0)
    judge = FeatureClassifier(ClassifierConfig(image_size=8, width=4, features=8)).eval()
    images = synthetic_images(n=200).images
    assert abs(frechet_distance(judge, images, images)) < 1e-6
    gen = torch.Generator().manual_seed(1)
    noise = torch.randn(images.shape, generator=gen)
    distances = [frechet_distance(judge, images, (images.float() / 255 + s * noise).clamp(0, 1))
                 for s in (0.05, 0.2, 0.5)]
    assert 0 < distances[0] < distances[1] < distances[2]
    noisy = (images.float() / 255 + 0.2 * noise).clamp(0, 1)
    with torch.no_grad():
        expected = _closed_form(judge(images).numpy(), judge((noisy * 255).round().to(torch.uint8)).numpy())
    assert distances[1] == pytest.approx(expected, rel=1e-3)


def test_classifier_learns_the_synthetic_classes():
    images = synthetic_images(n=200)
    judge = train_classifier(images, epochs=8, batch_size=50, lr=1e-2, progress=False)
    assert float((judge.predict(images.images) == images.labels).double().mean()) > 0.9
