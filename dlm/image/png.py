"""Image grids as PNG files, written with zlib alone (no imaging library): 8-bit greyscale or RGB, filter 0."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import torch
from torch import Tensor


def grid(images: Tensor, rows: int, pad: int = 2) -> Tensor:
    """images (N, C, H, W) in [0, 1] -> one (C, rows*(H+pad)+pad, cols*(W+pad)+pad) tile image, row-major, with
    a white border; cols = ceil(N / rows)."""
    n, c, h, w = images.shape
    cols = -(-n // rows)
    canvas = torch.ones(c, rows * (h + pad) + pad, cols * (w + pad) + pad)
    for i in range(n):
        r, k = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + k * (w + pad)
        canvas[:, top : top + h, left : left + w] = images[i].float().clamp(0, 1)
    return canvas


def write_png(path: str | Path, image: Tensor) -> Path:
    """Write image (C, H, W) in [0, 1], C = 1 or 3, as an 8-bit PNG. Returns the path."""
    c, h, w = image.shape
    if c not in (1, 3):
        raise ValueError(f"write_png needs 1 or 3 channels, got {c}")
    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).reshape(h, w * c).numpy()
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))  # filter type 0 per scanline

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 0 if c == 1 else 2, 0, 0, 0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
                     + chunk(b"IEND", b""))
    return path
