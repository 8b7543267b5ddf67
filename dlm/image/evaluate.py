"""`dlm eval images`: sample quality, conditional accuracy and likelihood of a model trained on an image source.

Reported (JSON) for one checkpoint, with N = num_samples:
  floors          fd_test_vs_train: FD(N train images, N test images), the floor any generator is judged
                  against; fd_codec: FD(codec reconstructions of N train images, N test images), the floor of a
                  perfect model of the codes
  per cfg scale   (class-conditional, captioned models) fd: FD(N samples, N test images); accuracy: the feature
                  classifier's accuracy on the samples against their caption's class; tokens_per_s of sampling
  image->caption  accuracy of zero-shot classification on test images (ImageModel.image_to_text)
  elbo            held-out bound on -log p(codes | caption) per code, nats (ImageModel.code_nll), with its
                  standard error over images
  classifier      its accuracy on the real test split (the judge's own ceiling) and on codec reconstructions of
                  it (classifier_codec_accuracy: the ceiling of a perfect model of the codes)
PNG grids: samples per class for each cfg scale (row = class), inpainting (rows: original, top half kept,
completions) and, for image-only models, unconditional samples.
The classifier (frechet.py) is trained once per dataset and cached in <out>/classifier unless --classifier names one.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from dlm.image.datasets import load_images
from dlm.image.frechet import FeatureClassifier, frechet_distance, train_classifier
from dlm.image.image_model import ImageModel
from dlm.image.png import grid, write_png


def classifier_for(dataset: str, path: str | Path, *, epochs: float = 1.0, seed: int = 0) -> FeatureClassifier:
    """The cached classifier at `path`, or one trained on `dataset`'s train split and saved there."""
    path = Path(path)
    if (path / "model.safetensors").is_file():
        return FeatureClassifier.from_pretrained(path)
    model = train_classifier(load_images(dataset, "train"), epochs=epochs, seed=seed)
    model.save_pretrained(path)
    return model


def floors(im: ImageModel, classifier: FeatureClassifier, n: int, generator: torch.Generator) -> dict[str, float]:
    """FD floors (module docstring), the classifier's test accuracy and its accuracy on codec reconstructions of the
    test split: the ceiling of the class accuracy of any model of the codes."""
    train, test = load_images(im.source.dataset, "train"), load_images(im.source.dataset, "test")
    pick = torch.randperm(len(train), generator=generator)[:n]
    reference = test.images[:n]
    accuracy = float((classifier.predict(test.images) == test.labels).double().mean())
    codec_accuracy = float((classifier.predict(_reconstruct(im, test.images)) == test.labels).double().mean())
    return {"fd_test_vs_train": frechet_distance(classifier, reference, train.images[pick]),
            "fd_codec": frechet_distance(classifier, reference, _reconstruct(im, train.images[pick])),
            "classifier_test_accuracy": accuracy, "classifier_codec_accuracy": codec_accuracy}


@torch.no_grad()
def _reconstruct(im: ImageModel, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """decode(encode(images)) (N, C, H, W), in batches."""
    return torch.cat([im.codec.decode(im.codec.encode(images[i : i + batch_size])).cpu()
                      for i in range(0, len(images), batch_size)])


def sample_sweep(im: ImageModel, classifier: FeatureClassifier, scales: list[float], n: int, *, steps: int,
                 batch_size: int, sampler: str, out: Path, seed: int) -> list[dict[str, Any]]:
    """One row per cfg scale: FD against the test split, class accuracy, tokens/s; a PNG grid each."""
    test = load_images(im.source.dataset, "test").images[:n]
    classes = len(im.captions()) if im.vocab.has_text else 1
    labels = torch.arange(n) % classes
    rows = []
    for scale in scales:
        gen = torch.Generator().manual_seed(seed)
        start, images = time.perf_counter(), []
        for i in range(0, n, batch_size):
            images.append(im.text_to_image(labels[i : i + batch_size], steps=steps, cfg_scale=scale,
                                           sampler=sampler, generator=gen))
        elapsed = time.perf_counter() - start
        images = torch.cat(images)
        row = {"cfg_scale": scale, "num_samples": n, "fd": frechet_distance(classifier, test, images),
               "tokens_per_s": n * (im.layout.image_end - im.layout.image_start) / elapsed}
        if im.vocab.has_text:
            row["accuracy"] = float((classifier.predict(images) == labels).double().mean())
        order = torch.argsort(labels[:100], stable=True)
        write_png(out / f"samples_cfg{scale:g}.png", grid(images[:100][order], rows=classes if classes > 1 else 10))
        rows.append(row)
    return rows


def caption_accuracy(im: ImageModel, n: int, *, n_t: int, batch_size: int, seed: int) -> dict[str, float]:
    """Zero-shot image->caption accuracy on the first n test images (n_t time samples per candidate caption, or
    the exact sum over the caption's mask patterns where ImageModel.exact_caption_bound)."""
    source_rows, labels = im.source.rows("test")
    n = min(n, len(source_rows))
    gen = torch.Generator().manual_seed(seed)
    predicted = torch.cat([im.image_to_text(source_rows[i : min(i + batch_size, n)], n_t=n_t, generator=gen)
                           for i in range(0, n, batch_size)])
    estimator = im.caption_estimator(n_t)
    return {"image_to_caption_accuracy": float((predicted == labels[:n]).double().mean()),
            "image_to_caption_n": n, "image_to_caption_estimator": estimator}


def held_out_elbo(im: ImageModel, n: int, *, n_t: int, batch_size: int, seed: int) -> dict[str, float]:
    """Mean and standard error of the per-code bound on the first n test rows."""
    rows, _ = im.source.rows("test")
    gen = torch.Generator().manual_seed(seed)
    per_image = torch.cat([im.code_nll(rows[i : min(i + batch_size, n)], n_t=n_t, generator=gen)
                           for i in range(0, n, batch_size)]) / (im.layout.image_end - im.layout.image_start)
    return {"elbo_per_code": float(per_image.mean()), "elbo_per_code_se": float(per_image.std() / math.sqrt(n)),
            "uniform_per_code": math.log(im.vocab.codebook_size), "elbo_n": n, "elbo_n_t": n_t}


def inpainting_grid(im: ImageModel, out: Path, *, steps: int, seed: int, count: int = 10) -> Path:
    """Rows: test images, their top half (bottom black), then three completions of the bottom half."""
    rows, _ = im.source.rows("test")
    rows = rows[:count]
    g = im.codec.cfg.grid
    keep = torch.zeros(count, g * g, dtype=torch.bool)
    keep[:, : g * (g // 2)] = True
    original = im.decode(rows)
    half = original.clone()
    half[..., (g // 2) * im.codec.cfg.downsample :, :] = 0
    gen = torch.Generator().manual_seed(seed)
    fills = [im.inpaint(rows, keep, steps=steps, generator=gen) for _ in range(3)]
    return write_png(out / "inpainting.png", grid(torch.cat([original, half, *fills]), rows=5))
