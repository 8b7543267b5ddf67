"""Fréchet distance in the feature space of a small classifier trained locally (no Inception download).

    FD(P, Q) = |mu_P - mu_Q|^2 + Tr(S_P + S_Q - 2 (S_P S_Q)^(1/2))      (Heusel et al., arXiv 1706.08500)
over the penultimate-layer features (dimension `features`) of FeatureClassifier, a two-conv CNN trained on the
same dataset's training split. The statistic is torchmetrics' FrechetInceptionDistance with this network as its
`feature` module (float64 accumulation). The same classifier judges class-conditional samples (accuracy).
FD is biased upwards for small sets: compare values computed with the same number of images (the floors in
`dlm eval images` use the sample count).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from dlm.image.datasets import ImageSet
from dlm.image.weights import load_module, save_module
from dlm.registry import ConfigError
from dlm.utils.progress import progress as progress_bar


@dataclass(frozen=True)
class ClassifierConfig:
    in_channels: int = 1
    image_size: int = 28
    num_classes: int = 10
    width: int = 32
    features: int = 128


class FeatureClassifier(nn.Module):
    """uint8 images (B, C, H, W) -> features (B, F) (forward; the `feature` module of torchmetrics' FID) and
    class logits (logits())."""

    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.body = nn.Sequential(
            nn.Conv2d(cfg.in_channels, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(2 * w * (cfg.image_size // 4) ** 2, cfg.features), nn.ReLU())
        self.head = nn.Linear(cfg.features, cfg.num_classes)
        self.num_features = cfg.features  # read by torchmetrics instead of a dummy 299x299 forward

    def forward(self, images: Tensor) -> Tensor:
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        return self.body(x.to(self.head.weight.device)).double()

    def logits(self, images: Tensor) -> Tensor:
        return self.head(self.forward(images).float())

    @torch.no_grad()
    def predict(self, images: Tensor, batch_size: int = 1000) -> Tensor:
        """(N,) predicted classes of uint8 or [0, 1] images."""
        return torch.cat([self.logits(images[i : i + batch_size]).argmax(-1).cpu()
                          for i in range(0, len(images), batch_size)])

    def save_pretrained(self, path: str | Path) -> None:
        save_module(self, self.cfg, path, "dlm-feature-classifier")

    @classmethod
    def from_pretrained(cls, path: str | Path) -> FeatureClassifier:
        return load_module(cls, ClassifierConfig, path, "train one with dlm.image.frechet.train_classifier")


def train_classifier(images: ImageSet, *, epochs: float = 1.0, batch_size: int = 128, lr: float = 2e-3,
                     seed: int = 0, progress: bool = True) -> FeatureClassifier:
    """Adam on cross-entropy over `images` (labels >= 0) for `epochs` passes; returns the classifier in eval mode."""
    labelled = images.labels >= 0
    x, y = images.images[labelled], images.labels[labelled]
    if len(x) == 0:
        raise ConfigError("the classifier needs labelled images; use a labelled split (e.g. mnist train)")
    _, c, h, _ = x.shape
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = FeatureClassifier(ClassifierConfig(c, h, int(y.max()) + 1))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = max(1, math.ceil(epochs * len(x) / batch_size))
    for step in progress_bar(range(steps), desc="classifier", disable=not progress, leave=False):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        rows = torch.randint(0, len(x), (batch_size,), generator=gen)
        loss = nn.functional.cross_entropy(model.logits(x[rows]), y[rows])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


def as_uint8(images: Tensor) -> Tensor:
    return images if images.dtype == torch.uint8 else (images.clamp(0, 1) * 255).round().to(torch.uint8)


@torch.no_grad()
def frechet_distance(classifier: FeatureClassifier, real: Tensor, fake: Tensor, batch_size: int = 1000) -> float:
    """FD between two image sets (N, C, H, W), uint8 or in [0, 1], in the classifier's feature space."""
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
    except ImportError:
        raise ConfigError("Fréchet distance needs torchmetrics: pip install 'dlm[image]'") from None
    if len(real) < 2 or len(fake) < 2:
        raise ConfigError("Fréchet distance needs at least 2 images per set")
    metric = FrechetInceptionDistance(feature=classifier, reset_real_features=True, normalize=False)
    for images, is_real in ((real, True), (fake, False)):
        for i in range(0, len(images), batch_size):
            metric.update(as_uint8(images[i : i + batch_size]), real=is_real)
    return float(metric.compute())
