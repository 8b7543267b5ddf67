"""Images as a token data source: ``vq:<codec dir>:<dataset>[:split]`` and ``vqtext:<codec dir>:<dataset>[:split]``.

vq:      rows of h*w image-code ids in raster order (row-major over the code grid), vocabulary = the codebook.
vqtext:  rows "caption <boi> codes <eoi>" over the joint vocabulary (vocabulary.py), caption = "a handwritten
         seven" (the dataset's caption prefix and class name): one model for text->image, image->text and
         inpainting.
<dataset>: a registered image dataset (mnist, fashion-mnist, binarized-mnist), whose split is encoded with the
codec (or read from <codec dir>/codes/<dataset>-<split>.safetensors when `dlm vq encode` wrote it there), or a
code file (.safetensors) written by `dlm vq encode`. [:split] pins the split for every use (e.g. ...:test for a
held-out evaluation); otherwise `dlm train` reads train and holds out data.val_fraction of it for validation.
Rows come in dataset order; the batcher shuffles them with the run's seed. Class labels ride along (rows()).
`dlm train` needs data.seq_len = the row length (49 for 28x28 images at downsample 4; 54 with MNIST captions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from dlm.image.datasets import IMAGE_DATASETS, caption, class_captions, load_images
from dlm.image.tokens import CodeSet, encode_images
from dlm.image.vocabulary import JointVocabulary
from dlm.image.weights import read_config
from dlm.registry import SOURCES, ConfigError

PREFIXES = {"vq": False, "vqtext": True}  # prefix -> rows carry captions; each is registered in SOURCES
CODES_DIR = "codes"


@dataclass(frozen=True)
class ImageSource:
    """A parsed spec: codec dir, dataset (name or code file), optional pinned split, captioned rows or not."""

    codec: str
    dataset: str
    split: str = ""
    captioned: bool = False
    # split -> CodeSet, loaded (or encoded) once per source object: the cache lives as long as its owner (e.g. an
    # ImageModel that scores the test split several times), never process-wide
    loaded: dict[str, CodeSet] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, spec: str) -> ImageSource:
        prefix, _, rest = spec.partition(":")
        parts = rest.split(":")
        if prefix not in PREFIXES or len(parts) not in (2, 3) or not all(parts):
            raise ConfigError(f"image source '{spec}' must look like vq:<codec dir>:<dataset>[:split] "
                              "(or vqtext:... for captioned rows)")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else "", PREFIXES[prefix])

    def codes(self, split: str = "train") -> CodeSet:
        """The code grids and labels of `split` (the pinned split wins)."""
        split = self.split or split
        if split not in self.loaded:
            self.loaded[split] = _codes(self.codec, self.dataset, split)
        return self.loaded[split]

    def vocabulary(self) -> JointVocabulary:
        """Codebook only (vq:) or caption words of every class ∪ codes ∪ {<boi>, <eoi>} (vqtext:)."""
        codebook = _codebook_size(self.codec)
        if not self.captioned:
            return JointVocabulary((), codebook)
        return JointVocabulary.from_captions(self.class_captions(), codebook)

    def class_captions(self) -> list[str]:
        """The caption of every class in label order, e.g. "a handwritten seven" for MNIST label 7."""
        if self.dataset.endswith(".safetensors"):
            codes = self.codes()
            return [caption(codes.caption_prefix, name) for name in codes.class_names]
        return class_captions(self.dataset)

    def rows(self, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """(ids (N, L) long, labels (N,) long) of `split`: the token rows (module docstring) and class labels."""
        codes = self.codes(split)
        vocab = self.vocabulary()
        if codes.codebook_size != vocab.codebook_size:
            raise ConfigError(f"the codes of {self.dataset} use {codes.codebook_size} codes but the codec has "
                              f"{vocab.codebook_size}; re-encode them with this codec (dlm vq encode)")
        captions = codes.captions() if self.captioned else None
        if captions is not None and bool((codes.labels < 0).any()):
            raise ConfigError(f"{self.dataset} ({codes.split}) has unlabelled images, which have no caption; "
                              "use vq: (no captions) or a labelled split")
        return vocab.rows(codes.codes, captions), codes.labels


def _codes(codec: str, dataset: str, split: str) -> CodeSet:
    if dataset.endswith(".safetensors"):
        return CodeSet.load(dataset)
    stored = Path(codec) / CODES_DIR / f"{dataset}-{split}.safetensors"
    if stored.is_file():
        return CodeSet.load(stored)
    if dataset not in IMAGE_DATASETS:
        raise ConfigError(f"'{dataset}' is neither an image dataset ({', '.join(sorted(IMAGE_DATASETS))}) nor a "
                          ".safetensors code file")
    from dlm.image.codec import VQCodec

    return encode_images(VQCodec.from_pretrained(codec), load_images(dataset, split), dataset=dataset, split=split)


def _codebook_size(codec: str) -> int:
    from dlm.image.codec import CodecConfig

    return read_config(codec, CodecConfig, "train one with `dlm vq train`").codebook_size


class ImageRows:
    """SOURCES["vq"] / SOURCES["vqtext"]: dlm.data.build_splits and tokenizer_from_config hand an image source to
    build_splits(cfg) / tokenizer(cfg) (dlm.data.splits.row_source); it yields token rows, not documents."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def __call__(self, split: str, cfg) -> list[str]:
        raise ConfigError(f"'{self.prefix}:' sources give token rows, not documents; use one as data.source of "
                          "dlm train (vq:<codec dir>:<dataset>)")

    def build_splits(self, data) -> tuple[torch.Tensor, None, torch.Tensor, None]:
        return image_splits(data)

    def tokenizer(self, data):
        return image_tokenizer(data)


def image_splits(data) -> tuple[torch.Tensor, None, torch.Tensor, None]:
    """dlm.data.build_splits for an image source: (train rows, None, validation rows, None), no padding.
    Validation: data.val_source (an image source) or the last data.val_fraction of the training rows."""
    source = ImageSource.parse(data.source)
    train, _ = source.rows("train")
    if data.seq_len != train.shape[1]:
        raise ConfigError(f"image source '{data.source}' has rows of {train.shape[1]} tokens; set "
                          f"data.seq_len={train.shape[1]} (and model.max_len >= it)")
    if data.val_source:
        val, _ = ImageSource.parse(data.val_source).rows("valid")
        return train, None, val, None
    if not 0.0 < data.val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction={data.val_fraction} must be in (0, 1) when data.val_source is empty")
    held_out = max(1, round(len(train) * data.val_fraction))
    return train[:-held_out], None, train[-held_out:], None


def image_tokenizer(data):
    """dlm.data.tokenizer_from_config for an image source: the WordLevel tokenizer of its vocabulary."""
    return ImageSource.parse(data.source).vocabulary().tokenizer()


for _prefix in PREFIXES:
    SOURCES.register(_prefix)(ImageRows(_prefix))
