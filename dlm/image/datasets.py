"""Named image datasets read from the local data dir ($DLM_DATA_DIR, default ../shared/data; see SOURCES.md).

load_images(name, split) -> ImageSet: uint8 images (N, C, H, W), int64 labels (N,) and the class names.
    mnist, fashion-mnist   IDX files; splits train (60,000) and test (10,000)
    binarized-mnist        the fixed stochastic binarization (MATLAB v5 X, values {0, 1} stored as 0 / 255);
                           splits train (50,000), valid (10,000), test (10,000). It has no label file: only test
                           has labels, recovered from its order (the MNIST test set stably sorted by label); train /
                           valid labels are -1.
Splits: 'train' | 'valid' | 'test' ('validation', 'val', 'dev' mean 'valid'); a dataset without a valid split
refuses it with a hint.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dlm.image.idx import read_idx, read_mat
from dlm.registry import ConfigError, Registry

# The rule of dlm.data.paths.data_dir, restated rather than imported: dlm.data's splits dispatch to dlm.image.source,
# so dlm.image must not import dlm.data (the import graph stays acyclic, tests/contracts/test_import_graph.py).
DATA_DIR_ENV = "DLM_DATA_DIR"
_SPLIT_ALIASES = {"validation": "valid", "val": "valid", "dev": "valid"}


def data_dir() -> Path:
    """$DLM_DATA_DIR if set, else ../shared/data next to the repo root (read at call time)."""
    env = os.environ.get(DATA_DIR_ENV, "")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"


def canonical_split(split: str) -> str:
    """'train' | 'valid' | 'test' ('validation', 'val', 'dev' mean 'valid')."""
    split = _SPLIT_ALIASES.get(split, split)
    if split not in ("train", "valid", "test"):
        raise ConfigError(f"unknown data split '{split}'; choose one of: train, valid, test")
    return split

IMAGE_DATASETS = Registry("image dataset")

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FASHION = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot")
CLASSES = {"mnist": (DIGITS, "a handwritten"), "binarized-mnist": (DIGITS, "a handwritten"),
           "fashion-mnist": (FASHION, "a photo of a")}  # dataset -> (class names, caption prefix)


def caption(prefix: str, name: str) -> str:
    """The caption of a class: prefix words, then the class name ("a handwritten seven")."""
    return f"{prefix} {name}".strip()


def class_captions(dataset: str) -> list[str]:
    """Captions of every class of a named dataset, in label order."""
    if dataset not in CLASSES:
        raise ConfigError(f"image dataset '{dataset}' has no class names; choose one of {', '.join(CLASSES)}")
    names, prefix = CLASSES[dataset]
    return [caption(prefix, n) for n in names]


@dataclass(frozen=True)
class ImageSet:
    """images: uint8 (N, C, H, W); labels: int64 (N,), -1 where unknown; class_names[k] names label k;
    caption_prefix: the words before the class name in a caption ("a handwritten seven")."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    caption_prefix: str = ""

    def __len__(self) -> int:
        return len(self.images)

    def caption(self, label: int) -> str:
        """The caption of class `label`, e.g. "a handwritten seven" (prefix words, then the class name)."""
        return caption(self.caption_prefix, self.class_names[label])

    def take(self, n: int) -> ImageSet:
        """The first n images (all when n <= 0)."""
        if n <= 0 or n >= len(self):
            return self
        return ImageSet(self.images[:n], self.labels[:n], self.class_names, self.caption_prefix)


def load_images(name: str, split: str = "train") -> ImageSet:
    """The images of `split` of the named dataset (module docstring). Raises a one-line ConfigError."""
    return IMAGE_DATASETS.get_factory(name)(canonical_split(split))


def _idx_dataset(folder: str, class_names: tuple[str, ...], prefix: str) -> Callable[[str], ImageSet]:
    def load(split: str) -> ImageSet:
        stem = {"train": "train", "test": "t10k"}.get(split)
        if stem is None:
            raise ConfigError(f"image dataset '{folder}' has splits train and test, not '{split}'; use test")
        root = data_dir() / folder
        if not root.is_dir():
            raise ConfigError(f"image dataset '{folder}' needs {root}/, which is missing; set {DATA_DIR_ENV}")
        images = read_idx(root / f"{stem}-images-idx3-ubyte.gz")
        labels = read_idx(root / f"{stem}-labels-idx1-ubyte.gz")
        return ImageSet(torch.from_numpy(images.copy())[:, None], torch.from_numpy(labels.astype(np.int64)),
                        class_names, prefix)

    return load


def _binarized(split: str) -> ImageSet:
    root = data_dir() / "binarized-mnist"
    x = read_mat(root / f"binarized_mnist_{split}.amat")  # (N, 784) in {0, 1}
    images = torch.from_numpy((x.astype(np.uint8) * 255).reshape(-1, 1, 28, 28))
    if split == "test":  # the MNIST test set, stably sorted by label
        counts = np.bincount(load_images("mnist", "test").labels.numpy(), minlength=10)
        labels = torch.from_numpy(np.repeat(np.arange(10), counts))
    else:
        labels = torch.full((len(images),), -1, dtype=torch.long)
    return ImageSet(images, labels, *CLASSES["binarized-mnist"])


IMAGE_DATASETS.register("mnist")(_idx_dataset("mnist", *CLASSES["mnist"]))
IMAGE_DATASETS.register("fashion-mnist")(_idx_dataset("fashion-mnist", *CLASSES["fashion-mnist"]))
IMAGE_DATASETS.register("binarized-mnist")(_binarized)
