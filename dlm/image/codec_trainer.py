"""Training and scoring a VQCodec: Adam on reconstruction MSE + commitment, atomic resumable checkpoints.

Step k draws its batch, and the quantizer's own random draws, from seeds keyed by (seed, k), so a resumed run
replays the uninterrupted one exactly (`--resume` falls back past a corrupt newest state, as `dlm train` does).
Checkpoints: out_dir/checkpoints/step_XXXXXX/{trainer_state.pt, model/} (dlm.train.checkpoint: written to a
temporary dir and renamed, `latest` pointer, newest 3 kept); the final codec goes to out_dir/final.
Reconstruction metrics on a split: per-pixel MSE in [0, 1] units, PSNR = 10 log10(1 / MSE) (dB, from the mean
MSE over the split), and codebook usage (perplexity of the code frequencies, tokens.code_perplexity).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dlm.image.codec import CodecConfig, VQCodec
from dlm.image.datasets import ImageSet
from dlm.image.tokens import code_perplexity
from dlm.registry import ConfigError
from dlm.train.checkpoint import (
    FINAL_DIR,
    MODEL_DIR,
    checkpoint_root,
    latest_checkpoint,
    save_checkpoint,
    write_dir_atomically,
)
from dlm.train.resume import state_to_resume
from dlm.utils.progress import progress


@dataclass(frozen=True)
class CodecTraining:
    steps: int = 2000
    batch_size: int = 128
    lr: float = 2e-3
    seed: int = 0
    save_every: int = 500
    progress: bool = True


def train_codec(cfg: CodecConfig, images: ImageSet, out_dir: str | Path, training: CodecTraining = CodecTraining(),
                *, resume: bool = False) -> VQCodec:
    """Train a codec on `images` (uint8 (N, C, H, W)) and export out_dir/final. Returns the codec (eval mode)."""
    if tuple(images.images.shape[1:]) != (cfg.in_channels, cfg.image_size, cfg.image_size):
        raise ConfigError(f"images of shape {tuple(images.images.shape[1:])} do not match the codec "
                          f"({cfg.in_channels}, {cfg.image_size}, {cfg.image_size}); set in_channels / image_size")
    out_dir, root = Path(out_dir), checkpoint_root(out_dir)
    state = state_to_resume(out_dir, resume=resume, run="a codec run", flag="--out")
    with torch.random.fork_rng(devices=[]):  # the initialization's seed, without touching the caller's RNG
        torch.manual_seed(training.seed)
        codec = VQCodec(cfg)
    optimizer = torch.optim.Adam(codec.parameters(), lr=training.lr)
    step = 0
    if state is not None:
        codec.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
    codec.train()
    bar = progress(total=training.steps, initial=step, desc="vq train", disable=not training.progress)
    while step < training.steps:
        lr = training.lr * 0.5 * (1 + math.cos(math.pi * step / training.steps))  # cosine to 0
        for group in optimizer.param_groups:
            group["lr"] = lr
        step_seed = training.seed * 1_000_003 + step
        rows = torch.randint(0, len(images), (training.batch_size,), generator=torch.Generator().manual_seed(step_seed))
        with torch.random.fork_rng(devices=[]):  # the quantizer's own draws (k-means init, dead-code restarts) use
            torch.manual_seed(step_seed)         # the global RNG: keyed by (seed, step) too, so a resume is exact
            out = codec(images.images[rows].float() / 255)
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()
        step += 1
        bar.update(1)
        bar.set_postfix(mse=f"{out.mse.item():.4f}")
        if step % training.save_every == 0 or step == training.steps:
            _save(root, step, codec, optimizer)
    bar.close()
    source = latest_checkpoint(root) / MODEL_DIR
    final = out_dir / FINAL_DIR
    write_dir_atomically(final, lambda tmp: VQCodec.from_pretrained(source).save_pretrained(tmp))
    return codec.eval()


def _save(root: Path, step: int, codec: VQCodec, optimizer: torch.optim.Optimizer) -> None:
    state = {"step": step, "model": codec.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": {},
             "data": {"step": step}}
    save_checkpoint(root, step, state, codec.save_pretrained)


@torch.no_grad()
def reconstruction_metrics(codec: VQCodec, images: ImageSet, *, batch_size: int = 500) -> dict[str, Any]:
    """MSE, PSNR (dB) and code usage of `codec` on `images`, plus images/s of encode + decode."""
    codec.eval()
    squared, codes, start = 0.0, [], time.perf_counter()
    for first in range(0, len(images), batch_size):
        x = images.images[first : first + batch_size].float() / 255
        k = codec.encode(x)
        squared += float(((codec.decode(k).cpu() - x) ** 2).sum())
        codes.append(k.cpu())
    mse = squared / images.images.numel()
    return {"mse": mse, "psnr_db": 10 * math.log10(1 / max(mse, 1e-12)), "num_images": len(images),
            "images_per_s": len(images) / (time.perf_counter() - start),
            **code_perplexity(torch.cat(codes), codec.cfg.codebook_size)}
