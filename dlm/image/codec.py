"""VQCodec: a small convolutional VQ-VAE (van den Oord et al., arXiv 1711.00937) that turns images into code grids.

    z_e = E(x)            x (B, C, H, W) in [0, 1] -> z_e (B, D, H/f, W/f), f = downsample (a power of 2)
    k   = argmin_j |z_e - e_j|          one of K codebook vectors per cell (raster order: row-major)
    x^  = G(e_k)                        decoded image (linear output, clamped to [0, 1] by decode)
    loss = |x^ - x|^2 + beta |z_e - sg(e_k)|^2
The quantizer is vector-quantize-pytorch's VectorQuantize (imported lazily, `pip install 'dlm[image]'`): the
codebook follows an EMA of its assigned encodings (no codebook loss term), is initialized by k-means on the first
batch, and codes used less than `dead_code_threshold` times (EMA count) are re-seeded from the batch.
HF conventions: save_pretrained(dir) writes config.json + model.safetensors, from_pretrained(dir) reads them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from dlm.image.weights import load_module, save_module
from dlm.registry import ConfigError


@dataclass(frozen=True)
class CodecConfig:
    in_channels: int = 1
    image_size: int = 28
    codebook_size: int = 256
    downsample: int = 4  # f: each code covers an f x f patch; the grid is (image_size / f)^2 codes
    hidden: int = 64
    code_dim: int = 32
    decay: float = 0.9  # EMA decay of the codebook
    commitment_weight: float = 0.25
    kmeans_init: bool = True
    dead_code_threshold: float = 1.0  # EMA usage below which a code is re-seeded from the batch
    dataset: str = ""  # what it was trained on (informational)

    @property
    def grid(self) -> int:
        return self.image_size // self.downsample

    def check(self) -> None:
        f = self.downsample
        if f < 1 or f & (f - 1) or self.image_size % f:
            raise ConfigError(f"downsample={f} must be a power of 2 dividing image_size={self.image_size}")
        if self.codebook_size < 2:
            raise ConfigError(f"codebook_size={self.codebook_size} must be at least 2")


def _quantizer(cfg: CodecConfig) -> nn.Module:
    try:
        from vector_quantize_pytorch import VectorQuantize
    except ImportError:
        raise ConfigError("the VQ codec needs vector-quantize-pytorch: pip install 'dlm[image]'") from None
    return VectorQuantize(dim=cfg.code_dim, codebook_size=cfg.codebook_size, decay=cfg.decay,
                          commitment_weight=cfg.commitment_weight, kmeans_init=cfg.kmeans_init, kmeans_iters=10,
                          threshold_ema_dead_code=cfg.dead_code_threshold, accept_image_fmap=True)


class _Residual(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(width, width, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def _encoder(cfg: CodecConfig) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = cfg.in_channels
    for _ in range(int(math.log2(cfg.downsample))):  # each stride-2 conv halves H and W
        layers += [nn.Conv2d(width, cfg.hidden, 4, stride=2, padding=1), nn.ReLU()]
        width = cfg.hidden
    layers += [nn.Conv2d(width, cfg.hidden, 3, padding=1), _Residual(cfg.hidden), nn.ReLU(),
               nn.Conv2d(cfg.hidden, cfg.code_dim, 1)]
    return nn.Sequential(*layers)


def _decoder(cfg: CodecConfig) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cfg.code_dim, cfg.hidden, 3, padding=1), _Residual(cfg.hidden)]
    stages = int(math.log2(cfg.downsample))
    for i in range(stages):
        out = cfg.in_channels if i == stages - 1 else cfg.hidden
        layers += [nn.ReLU(), nn.ConvTranspose2d(cfg.hidden, out, 4, stride=2, padding=1)]
    if stages == 0:
        layers += [nn.ReLU(), nn.Conv2d(cfg.hidden, cfg.in_channels, 1)]
    return nn.Sequential(*layers)


@dataclass
class CodecOutput:
    """reconstruction (B, C, H, W) (unclamped); codes (B, h, w) long; loss = reconstruction MSE + commitment."""

    reconstruction: Tensor
    codes: Tensor
    mse: Tensor
    commitment: Tensor

    @property
    def loss(self) -> Tensor:
        return self.mse + self.commitment


class VQCodec(nn.Module):
    """Images <-> code grids (module docstring)."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        cfg.check()
        self.cfg = cfg
        self.encoder, self.quantizer, self.decoder = _encoder(cfg), _quantizer(cfg), _decoder(cfg)

    def forward(self, images: Tensor) -> CodecOutput:
        """images (B, C, H, W) float in [0, 1] -> reconstruction, codes and the training loss terms."""
        quantized, codes, commitment = self.quantizer(self.encoder(images))
        reconstruction = self.decoder(quantized)  # linear: a sigmoid saturates on the black background
        mse = torch.mean((reconstruction - images) ** 2)
        return CodecOutput(reconstruction, codes, mse, commitment.sum())

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """images (B, C, H, W) in [0, 1] (or uint8 0..255) -> codes (B, h, w) long, the nearest codebook entries."""
        if images.dtype == torch.uint8:
            images = images.float() / 255
        _, codes, _ = self.quantizer(self.encoder(images.to(self._device())))
        return codes.long()

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """codes (B, h, w) or (B, h*w) long in [0, K) -> images (B, C, H, W) in [0, 1]."""
        g = self.cfg.grid
        codes = codes.to(self._device()).long().reshape(-1, g, g)
        if int(codes.min()) < 0 or int(codes.max()) >= self.cfg.codebook_size:
            raise ConfigError(f"codes must lie in [0, {self.cfg.codebook_size}); got [{int(codes.min())}, "
                              f"{int(codes.max())}]")
        quantized = self.quantizer.get_output_from_indices(codes)  # (B, D, h, w) for image feature maps
        return self.decoder(quantized).clamp(0, 1)

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def save_pretrained(self, path: str | Path) -> None:
        """Write config.json + model.safetensors into `path`."""
        save_module(self, self.cfg, path, "dlm-vq-codec")

    @classmethod
    def from_pretrained(cls, path: str | Path, map_location: str | torch.device = "cpu") -> VQCodec:
        return load_module(cls, CodecConfig, path, "train one with `dlm vq train`", map_location)
