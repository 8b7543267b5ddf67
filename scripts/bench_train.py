"""Training-step throughput and MFU of dlm's DiffusionLM against a plain PyTorch transformer of the same size.

A step is forward + backward + AdamW update of one batch. MFU = model FLOPs/s / peak FLOPs/s, with model FLOPs per
token = 6 N_matmul + 12 n_layers d L (PaLM appendix B; Transformer.num_flops_per_token) and the peak measured in
the same run as the rate of a large fp32 torch.mm. The three are timed in turn, round after round, and
summarized by medians, so a machine shared with other work slows them alike. Writes JSON.

    .venv/bin/python scripts/bench_train.py [--out outputs/bench_train.json] [--models tiny,small] [--steps 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dlm.config import ModelConfig, load_config  # noqa: E402
from dlm.diffusion_lm import DiffusionLM  # noqa: E402

VOCAB = 69  # the char tokenizer of Tiny Shakespeare (65 characters + 4 specials)


def matmul(size: int = 2048):
    """A (size x size) @ (size x size) fp32 torch.mm and its FLOPs: the machine's practical peak."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    return (lambda: a @ b), 2 * size**3


class ReferenceBlock(nn.Module):
    """Pre-norm bidirectional block: LN -> qkv -> SDPA -> out, LN -> Linear -> GELU -> Linear."""

    def __init__(self, d: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d, bias=False)
        hidden = int(mlp_ratio * d)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d))

    def forward(self, x: Tensor) -> Tensor:
        B, L, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, L, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, L, d))
        return x + self.mlp(self.norm2(x))


class Reference(nn.Module):
    """Embedding + blocks + LN + head; loss = cross-entropy of every position (B, L) -> scalar."""

    def __init__(self, cfg: ModelConfig, vocab: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, cfg.d_model)
        self.blocks = nn.ModuleList(ReferenceBlock(cfg.d_model, cfg.n_heads, cfg.mlp_ratio)
                                    for _ in range(cfg.n_layers))
        self.norm, self.head = nn.LayerNorm(cfg.d_model), nn.Linear(cfg.d_model, vocab)

    def loss(self, x: Tensor) -> Tensor:
        h = self.embed(x)
        for block in self.blocks:
            h = block(h)
        return F.cross_entropy(self.head(self.norm(h)).flatten(0, 1), x.flatten())

    def num_flops_per_token(self, seq_len: int, n_layers: int, d: int) -> int:
        n_matmul = sum(p.numel() for n, p in self.named_parameters() if p.dim() == 2 and "embed" not in n)
        return 6 * n_matmul + 12 * n_layers * d * seq_len


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved_medians(fns: dict, steps: int, warmup: int) -> dict[str, float]:
    """Median seconds per call of each fn, calling them in turn (a drifting machine load hits all alike)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {key: [] for key in fns}
    for _ in range(steps):
        for key, fn in fns.items():
            times[key].append(timed(fn))
    return {key: statistics.median(values) for key, values in times.items()}


def train_step(module: nn.Module, loss_fn):
    """forward + backward + AdamW update, as a zero-argument callable."""
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)

    def step() -> None:
        loss_fn().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def bench_model(name: str, batch: int, seq_len: int, steps: int, warmup: int) -> dict:
    """dlm vs the reference (and the matmul peak), measured interleaved on one (batch, seq_len) shape."""
    cfg = load_config(None, [f"model={name}", f"model.max_len={seq_len}"])
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, VOCAB, (batch, seq_len), generator=generator)
    torch.manual_seed(0)
    model = DiffusionLM.from_config(cfg, VOCAB)
    reference = Reference(cfg.model, VOCAB + 1)  # the absorbing model's output width (mask appended)
    peak_fn, peak_flops = matmul()
    seconds = interleaved_medians({
        "peak": peak_fn,
        "dlm": train_step(model, lambda: model.loss(x0, generator=generator).loss),
        "reference": train_step(reference, lambda: reference.loss(x0)),
    }, steps, warmup)
    peak = peak_flops / seconds["peak"]
    flops = {"dlm": model.backbone.num_flops_per_token(seq_len),
             "reference": reference.num_flops_per_token(seq_len, cfg.model.n_layers, cfg.model.d_model)}
    result = {"model": name, "batch_size": batch, "seq_len": seq_len, "d_model": cfg.model.d_model,
              "n_layers": cfg.model.n_layers, "n_heads": cfg.model.n_heads, "num_parameters": model.num_parameters(),
              "peak_fp32_matmul_flops": peak}
    for key in ("dlm", "reference"):
        tokens_per_s = batch * seq_len / seconds[key]
        result[key] = {"step_ms": 1000 * seconds[key], "tokens_per_s": tokens_per_s,
                       "flops_per_token": flops[key], "mfu": flops[key] * tokens_per_s / peak}
    result["speed_vs_reference"] = result["dlm"]["tokens_per_s"] / result["reference"]["tokens_per_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/bench_train.json")
    parser.add_argument("--models", default="tiny,small", help="configs/model presets, comma-separated")
    parser.add_argument("--shapes", default="32x128,32x256", help="BxL per model, comma-separated")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    report = {"machine": {"processor": platform.processor() or platform.machine(), "torch": torch.__version__,
                          "threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}, "results": []}
    for name, shape in zip(args.models.split(","), args.shapes.split(",")):
        batch, seq_len = (int(v) for v in shape.split("x"))
        result = bench_model(name, batch, seq_len, args.steps, args.warmup)
        report["results"].append(result)
        print(f"{name}: dlm {result['dlm']['tokens_per_s']:.0f} tok/s (MFU {result['dlm']['mfu']:.2f}), reference "
              f"{result['reference']['tokens_per_s']:.0f} tok/s (MFU {result['reference']['mfu']:.2f}), "
              f"ratio {result['speed_vs_reference']:.2f}; peak {result['peak_fp32_matmul_flops'] / 1e9:.0f} GFLOP/s",
              flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
