"""Training-step throughput and MFU of dlm's DiffusionLM, every objective, against plain PyTorch anchors of one size.

A step is forward + backward + AdamW update of one batch, each model with its own recipe: dlm through
`DiffusionLM.loss` (entry-point token check included) and `dlm.train.optim.build_optimizer` (fused AdamW), the
anchors with a plain `torch.optim.AdamW` (nanoGPT's `configure_optimizers` fuses only on CUDA). Anchors,
re-implemented here: `Reference`, a plain bidirectional pre-norm transformer without positions or time
(cross-entropy at every position), for every objective; `NanoGPT`, the architecture of nanoGPT's model.py (learned
positions, causal SDPA, biased linears, exact GELU, dropout modules, head tied to the embedding), for the AR
objective. The reference has the token-level size of every objective's backbone (same d, layers, heads, MLP, N + 1
outputs) but no time input: SEDD's and UDLM's backbones are time-conditioned (adaLN), so their ratio includes what a
DiT pays by design and the reference does not: the time MLP and per-block modulation projections (once per sequence;
their 78k parameters at `tiny` are most of the 186k vs 108k count) and the modulation itself, h (1 + scale) + shift
and x + gate y around each branch, elementwise passes over (B, L, d) forward and backward, where the reference's
LayerNorm applies its affine inside the kernel. MFU = model FLOPs/s / peak FLOPs/s, model FLOPs per token = 6
N_matmul + 12 n_layers d L (PaLM appendix B), peak = the rate of a large fp32 torch.mm measured in the same run.
Every round times each model once in turn (A/B/A/B), so a machine shared with other work slows them alike; the speed
ratio is the median over rounds of the per-round ratio anchor_time / dlm_time, by the wall clock (`speed_vs_*`) and
by the process's CPU time (`cpu_speed_vs_*`, robust to other processes taking the core between the A/B calls). The
headline is eager against eager. With --compile each dlm model also runs with its backbone compiled (as
`train.compile=true` does) and the reference with its loss compiled (torch.compile, inductor), reported as
`<objective>_compiled` against both the compiled and the eager reference; it is off by default because inductor
takes minutes per model on a CPU. Writes JSON.

    python -m scripts.bench.train [--out benchmarks/bench_train.json] [--models tiny,small] [--steps 15]
        [--compile]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlm.config import ModelConfig, load_config
from dlm.diffusion_lm import DiffusionLM
from dlm.train.optim import build_optimizer
from scripts.bench.harness import median_ratio

VOCAB = 69  # the char tokenizer of Tiny Shakespeare (65 characters + 4 specials)
OBJECTIVES = ["masked_elbo", "radd", "score_entropy", "uniform_elbo", "autoregressive"]  # each with its own defaults


def matmul(size: int = 2048):
    """A (size x size) @ (size x size) fp32 torch.mm and its FLOPs: the machine's practical peak."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    return (lambda: a @ b), 2 * size**3


def matmul_flops_per_token(module: nn.Module, seq_len: int, n_layers: int, d: int) -> int:
    """6 N_matmul + 12 n_layers d L, N_matmul = 2-D weights applied to every token: not the embeddings (a tied head
    counts once, as the head), nor the time MLP and adaLN projections (once per sequence, on the conditioning)."""
    n_matmul = sum(p.numel() for n, p in module.named_parameters() if p.dim() == 2 and "embed" not in n
                   and "adaln" not in n and not n.startswith(("wte", "wpe")))
    return 6 * n_matmul + 12 * n_layers * d * seq_len


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


class NanoGPTBlock(nn.Module):
    """nanoGPT's Block: x + attn(ln_1(x)), x + mlp(ln_2(x)); causal SDPA, biased linears, exact GELU, dropout."""

    def __init__(self, d: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.attn_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.attn_dropout, self.resid_dropout = nn.Dropout(dropout), nn.Dropout(dropout)
        self.c_fc, self.gelu, self.mlp_proj = nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d)
        self.mlp_dropout = nn.Dropout(dropout)
        self.dropout = dropout

    def attn(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (z.view(B, T, self.heads, C // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0, is_causal=True)
        return self.resid_dropout(self.attn_proj(y.transpose(1, 2).contiguous().view(B, T, C)))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp_dropout(self.mlp_proj(self.gelu(self.c_fc(self.ln_2(x)))))


class NanoGPT(nn.Module):
    """nanoGPT's GPT: token + learned position embeddings, dropout, blocks, ln_f, lm_head tied to wte."""

    def __init__(self, cfg: ModelConfig, vocab: int):
        super().__init__()
        d = cfg.d_model
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(cfg.max_len, d)
        self.drop = nn.Dropout(0.0)
        self.blocks = nn.ModuleList(NanoGPTBlock(d, cfg.n_heads) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * cfg.n_layers) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, std=std)

    def loss(self, x: Tensor) -> Tensor:
        """Next-token cross-entropy: position l predicts x[l + 1] (the last position is not scored)."""
        pos = torch.arange(x.shape[1], device=x.device)
        h = self.drop(self.wte(x) + self.wpe(pos))
        for block in self.blocks:
            h = block(h)
        logits = self.lm_head(self.ln_f(h))
        targets = F.pad(x[:, 1:], (0, 1), value=-1)
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)


def first_call_seconds(fns: dict) -> dict[str, float]:
    """Seconds of each fn's first call (for a compiled one: the compilation), before any timing."""
    return {key: timed(fn) for key, fn in fns.items()}


def timed(fn) -> float:
    return timed_both(fn)[0]


def timed_both(fn) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds of this process) of one call. The CPU time leaves out the time the OS gave
    to other processes, so on a shared machine it tracks the work done more closely than the wall clock."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def interleaved(fns: dict, steps: int, warmup: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU seconds per call of each fn, calling them in turn round after round (A/B/A/B)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    wall: dict[str, list[float]] = {key: [] for key in fns}
    cpu: dict[str, list[float]] = {key: [] for key in fns}
    for _ in range(steps):
        for key, fn in fns.items():
            w, c = timed_both(fn)
            wall[key].append(w)
            cpu[key].append(c)
    return wall, cpu


def train_step(module: nn.Module, loss_fn, optimizer: torch.optim.Optimizer | None = None):
    """forward + backward + AdamW update, as a zero-argument callable."""
    optimizer = optimizer or torch.optim.AdamW(module.parameters(), lr=1e-4)

    def step() -> None:
        loss_fn().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def dlm_step(obj: str, base: list[str], x0: Tensor, generator: torch.Generator, *,
             compiled: bool = False) -> tuple[DiffusionLM, object]:
    """One objective's DiffusionLM (seeded init) and its training step through DiffusionLM.loss + fused AdamW."""
    torch.manual_seed(0)
    model = DiffusionLM.from_config(load_config(None, [*base, f"objective.name={obj}"]), VOCAB)
    if compiled:
        model.backbone.compile()  # what train.compile=true does (dlm/train/parallel.py)
    train_cfg = load_config(None, [*base, f"objective.name={obj}", "train.lr=1e-4"]).train
    return model, train_step(model, lambda: model.loss(x0, generator=generator).loss, build_optimizer(model, train_cfg))


def model_steps(name: str, batch: int, seq_len: int, objectives: list[str], *, with_nanogpt: bool = True,
                compile_too: bool = False) -> tuple[object, dict[str, nn.Module], dict]:
    """(model config, modules, step callables) on one random (batch, seq_len) batch: each objective's DiffusionLM,
    the reference, nanoGPT for the AR objective (if with_nanogpt) and, with compile_too, the compiled variants."""
    base = [f"model={name}", f"model.max_len={seq_len}"]
    cfg = load_config(None, base)
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, VOCAB, (batch, seq_len), generator=generator)
    modules: dict[str, nn.Module] = {}
    fns: dict = {}
    for obj in objectives:
        modules[obj], fns[obj] = dlm_step(obj, base, x0, generator)
    torch.manual_seed(0)
    reference = Reference(cfg.model, VOCAB + 1)  # the absorbing model's output width (mask appended)
    modules["reference"], fns["reference"] = reference, train_step(reference, lambda: reference.loss(x0))
    if with_nanogpt and "autoregressive" in objectives:
        nanogpt = NanoGPT(cfg.model, VOCAB)
        modules["nanogpt"], fns["nanogpt"] = nanogpt, train_step(nanogpt, lambda: nanogpt.loss(x0))
    if compile_too:
        for obj in objectives:
            modules[f"{obj}_compiled"], fns[f"{obj}_compiled"] = dlm_step(obj, base, x0, generator,
                                                                          compiled=True)
        torch.manual_seed(0)
        ref_c = Reference(cfg.model, VOCAB + 1)
        ref_c_loss = torch.compile(ref_c.loss)
        modules["reference_compiled"], fns["reference_compiled"] = ref_c, train_step(ref_c, lambda: ref_c_loss(x0))
    return cfg, modules, fns


def bench_model(name: str, batch: int, seq_len: int, steps: int, warmup: int, objectives: list[str],
                compile_too: bool = False) -> dict:
    """Every objective's dlm step and the anchors (and the matmul peak), interleaved on one (batch, seq_len)."""
    cfg, modules, steps_of = model_steps(name, batch, seq_len, objectives, compile_too=compile_too)
    peak_fn, peak_flops = matmul()
    fns = {"peak": peak_fn, **steps_of}
    first = first_call_seconds({key: fn for key, fn in fns.items() if key.endswith("_compiled")})
    times, cpu_times = interleaved(fns, steps, warmup)
    peak = peak_flops / statistics.median(times["peak"])
    result = {"model": name, "batch_size": batch, "seq_len": seq_len, "d_model": cfg.model.d_model,
              "n_layers": cfg.model.n_layers, "n_heads": cfg.model.n_heads, "peak_fp32_matmul_flops": peak,
              "rounds": steps}
    for key, module in modules.items():
        net = module.backbone if isinstance(module, DiffusionLM) else module
        flops = matmul_flops_per_token(net, seq_len, cfg.model.n_layers, cfg.model.d_model)
        tokens_per_s = batch * seq_len / statistics.median(times[key])
        result[key] = {"step_ms": 1000 * statistics.median(times[key]), "tokens_per_s": tokens_per_s,
                       "flops_per_token": flops, "mfu": flops * tokens_per_s / peak,
                       "num_parameters": sum(p.numel() for p in module.parameters()),
                       "cpu_step_ms": 1000 * statistics.median(cpu_times[key])}
        if key in first:
            result[key]["first_step_s"] = first[key]
    for key in modules:  # each dlm step's speed relative to the anchors: median of per-round ratios
        obj = key.removesuffix("_compiled")
        if obj not in objectives:
            continue
        anchors = ["reference"] + (["reference_compiled"] if key != obj else []) + \
            (["nanogpt"] if obj == "autoregressive" else [])
        for anchor in anchors:
            result[key][f"speed_vs_{anchor}"] = median_ratio(times[anchor], times[key])
            result[key][f"cpu_speed_vs_{anchor}"] = median_ratio(cpu_times[anchor], cpu_times[key])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/bench_train.json")
    parser.add_argument("--models", default="tiny,small", help="configs/model presets, comma-separated")
    parser.add_argument("--shapes", default="32x128,32x256", help="BxL per model, comma-separated")
    parser.add_argument("--objectives", default=",".join(OBJECTIVES))
    parser.add_argument("--steps", type=int, default=15, help="rounds (each model one step per round)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--note", default="", help="how the machine was loaded, recorded in the JSON")
    parser.add_argument("--compile", action="store_true",
                        help="also time compiled dlm backbones and a compiled reference (minutes of inductor)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    report = {"machine": {"processor": platform.processor() or platform.machine(), "torch": torch.__version__,
                          "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                          "load_average_at_start": os.getloadavg(), "note": args.note,
                          "compiled": args.compile}, "results": []}
    for name, shape in zip(args.models.split(","), args.shapes.split(",")):
        batch, seq_len = (int(v) for v in shape.split("x"))
        result = bench_model(name, batch, seq_len, args.steps, args.warmup, args.objectives.split(","), args.compile)
        report["results"].append(result)
        print(f"{name} {shape}: reference {result['reference']['tokens_per_s']:.0f} tok/s; peak "
              f"{result['peak_fp32_matmul_flops'] / 1e9:.0f} GFLOP/s", flush=True)
        for key, r in result.items():
            if isinstance(r, dict) and "speed_vs_reference" in r:
                ratios = ", ".join(f"vs {k.removeprefix('speed_vs_')} {v:.2f}x (CPU time {r['cpu_' + k]:.2f}x)"
                                   for k, v in r.items() if k.startswith("speed_vs_"))
                print(f"  {key}: {r['tokens_per_s']:.0f} tok/s (MFU {r['mfu']:.2f}), {ratios}", flush=True)
    write_report(report, args.out)


def write_report(report: dict, out: str) -> None:
    """The JSON report, with the machine's load average at the end of the run."""
    report["machine"]["load_average_at_end"] = os.getloadavg()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
