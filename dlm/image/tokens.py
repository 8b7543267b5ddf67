"""A token dataset of images: the code grids a VQCodec assigns to a split, with the class labels.

One safetensors file: tensors "codes" int32 (N, h, w) in [0, K) and "labels" int64 (N,) (-1 = unknown); metadata
(strings) "dataset", "split", "codebook_size", "class_names" (JSON list), "caption_prefix", "codec".
`dlm vq encode` writes it; the vq: data source and `dlm eval images` read it (or encode on the fly).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from dlm.image.datasets import ImageSet, caption
from dlm.registry import ConfigError
from dlm.utils.progress import progress as progress_bar


@dataclass(frozen=True)
class CodeSet:
    """codes (N, h, w) long; labels (N,) long; class_names; caption_prefix; codebook_size K."""

    codes: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    caption_prefix: str
    codebook_size: int
    dataset: str = ""
    split: str = ""

    def __len__(self) -> int:
        return len(self.codes)

    def captions(self) -> list[str]:
        return [caption(self.caption_prefix, self.class_names[y]) for y in self.labels.tolist()]

    def save(self, path: str | Path, codec: str = "") -> None:
        """Write the safetensors file atomically (a temporary file, then a rename)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"dataset": self.dataset, "split": self.split, "codebook_size": str(self.codebook_size),
                "class_names": json.dumps(list(self.class_names)), "caption_prefix": self.caption_prefix,
                "codec": codec}
        partial = path.with_name(f".{path.name}.tmp{os.getpid()}")
        save_file({"codes": self.codes.int().contiguous(), "labels": self.labels.long().contiguous()}, str(partial),
                  metadata=meta)
        os.replace(partial, path)

    @classmethod
    def load(cls, path: str | Path) -> CodeSet:
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"code dataset {path} is missing; write it with `dlm vq encode`")
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            codes, labels = handle.get_tensor("codes").long(), handle.get_tensor("labels").long()
        return cls(codes, labels, tuple(json.loads(meta.get("class_names", "[]"))), meta.get("caption_prefix", ""),
                   int(meta.get("codebook_size", int(codes.max()) + 1)), meta.get("dataset", ""), meta.get("split", ""))


@torch.no_grad()
def encode_images(codec, images: ImageSet, *, batch_size: int = 512, dataset: str = "", split: str = "",
                  progress: bool = True) -> CodeSet:
    """Codes of every image of `images` under `codec` (a VQCodec in eval mode)."""
    parts = []
    for start in progress_bar(range(0, len(images), batch_size), desc="encode", disable=not progress, leave=False):
        parts.append(codec.encode(images.images[start : start + batch_size]).cpu())
    return CodeSet(torch.cat(parts), images.labels, images.class_names, images.caption_prefix,
                   codec.cfg.codebook_size, dataset, split)


def code_perplexity(codes: torch.Tensor, codebook_size: int) -> dict[str, float]:
    """Codebook usage: perplexity exp(H(f)) of the code frequencies f (K = every code used equally) and the
    fraction of codes used at least once."""
    counts = torch.bincount(codes.reshape(-1).long(), minlength=codebook_size).double()
    freq = counts / counts.sum()
    entropy = -(freq[freq > 0] * freq[freq > 0].log()).sum()
    return {"code_perplexity": float(entropy.exp()), "codes_used": float((counts > 0).double().mean())}
