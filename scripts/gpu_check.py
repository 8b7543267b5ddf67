"""GPU readiness in one run (scripts/gpu_check.sh wraps it): every check is independent, timed and written to JSON.

  flash_vs_sdpa      logits of the same weights with flash-attn and with SDPA (bf16, L=1024): max |diff| and the
                     relative error; skipped (recorded) when flash-attn is not installed
  bf16_vs_fp32       the training loss of masked_elbo, score_entropy and autoregressive in fp32 and under bf16
                     autocast, same weights and noise: relative difference
  train_<objective>  compiled (not in --dry-run) training throughput of the base config (the 110M DiT) at L=1024,
                     V=50257: forward + backward + AdamW steps, tokens/s and MFU = 6N+12nLd FLOPs/token x tokens/s
                     over the card's dense bf16 peak (table below; else a measured bf16 matmul)
  sample_<cache>     greedy confidence decoding (block 32, 2 tokens/step) of a 1024-token sequence after a 256-token
                     prompt, with no cache and with the dKV cache: tokens/s and the speed-up
Each check runs in try/except: a failure records its error and the rest still run. The JSON is rewritten after
every check, so a run killed by a time limit keeps what it measured. A check that cannot run here (flash-attn
missing) prints `skipped (why)`, never `ok`. Without CUDA and without --dry-run it prints NO_CUDA at once and exits
0 having checked nothing (no JSON is written: there is nothing to record). --dry-run: the same checks with tiny
sizes and a 512-token vocabulary on whatever device there is (CPU in CI: seconds).

    python scripts/gpu_check.py --out-dir benchmarks/gpu_check [--dry-run]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from dlm.config import RunConfig, load_config
from dlm.diffusion_lm import DiffusionLM

PEAK_BF16 = {  # dense bf16 tensor-core peak, FLOP/s (vendor datasheets; sparsity excluded)
    "H200": 989e12, "H100": 989e12, "H800": 989e12, "A100": 312e12, "A800": 312e12, "L40S": 362e12,
    "L4": 121e12, "A10G": 70e12, "A10": 125e12, "RTX 4090": 165e12, "RTX 6000 Ada": 364e12,
}
NO_CUDA = "no CUDA device: nothing to check (use --dry-run for the CPU smoke test)"
OBJECTIVES = ["masked_elbo", "score_entropy", "autoregressive"]  # each with its own process and time defaults


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Full (GPU) or tiny (--dry-run) sizes of every check."""

    model: str = "base"
    vocab: int = 50257  # GPT-2
    seq_len: int = 1024
    batch: int = 16
    steps: int = 10
    warmup: int = 3
    sample_batch: int = 8
    prompt: int = 256
    repeats: int = 2  # sampling runs; the first warms up kernels and the allocator
    tiny: bool = False


TINY = Sizes(model="tiny", vocab=512, seq_len=64, batch=2, steps=2, warmup=1, sample_batch=2, prompt=32, repeats=1,
             tiny=True)


def build(objective: str, sizes: Sizes, device: torch.device, **model_overrides) -> DiffusionLM:
    overrides = [f"model={sizes.model}", f"objective.name={objective}", f"data.seq_len={sizes.seq_len}",
                 f"model.max_len={sizes.seq_len}", "model.dropout=0.0"]
    overrides += [f"model.{key}={value}" for key, value in model_overrides.items()]
    cfg: RunConfig = load_config(None, overrides)
    torch.manual_seed(0)
    return DiffusionLM.from_config(cfg, sizes.vocab).to(device)


def tokens(sizes: Sizes, device: torch.device, batch: int | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, sizes.vocab, (batch or sizes.batch, sizes.seq_len), generator=g).to(device)


def generator(device: torch.device, seed: int = 2) -> torch.Generator:
    return torch.Generator(device).manual_seed(seed)


def autocast(device: torch.device, enabled: bool = True):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check_flash(sizes: Sizes, device: torch.device) -> dict:
    import importlib.util

    if importlib.util.find_spec("flash_attn") is None or device.type != "cuda":
        return {"skipped": "flash-attn is not installed" if device.type == "cuda" else "flash-attn needs CUDA"}
    sdpa = build("masked_elbo", sizes, device, attention="sdpa").eval()
    flash = build("masked_elbo", sizes, device, attention="flash").eval()
    flash.load_state_dict(sdpa.state_dict())
    x, t = tokens(sizes, device, 4), torch.full((4,), 0.5, device=device)
    with torch.no_grad(), autocast(device):
        a, b = sdpa(x, t).log_probs.float(), flash(x, t).log_probs.float()
    diff = (a - b).abs()
    return {"max_abs_diff": diff.max().item(), "mean_abs_diff": diff.mean().item(),
            "relative_l2": ((a - b).norm() / a.norm()).item(), "argmax_agreement": (a.argmax(-1) == b.argmax(-1))
            .float().mean().item()}


def check_bf16(sizes: Sizes, device: torch.device) -> dict:
    out = {}
    for objective in OBJECTIVES:
        model = build(objective, sizes, device)
        x = tokens(sizes, device, min(sizes.batch, 4))
        losses = {}
        for name, enabled in (("fp32", False), ("bf16", True)):
            with torch.no_grad(), autocast(device, enabled):
                losses[name] = model.loss(x, generator=generator(device)).loss.float().item()
        losses["relative_diff"] = abs(losses["bf16"] - losses["fp32"]) / abs(losses["fp32"])
        out[objective] = losses
    return out


def peak_flops(device: torch.device) -> tuple[float, str]:
    """The card's dense bf16 peak from PEAK_BF16, else a measured large bf16 matmul (CPU: fp32)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, value in PEAK_BF16.items():
            if key in name:
                return value, f"datasheet ({key})"
    n = 4096 if device.type == "cuda" else 512
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    start, reps = time.perf_counter(), 20
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start), "measured matmul"


def check_train(objective: str, sizes: Sizes, device: torch.device, peak: float) -> dict:
    model = build(objective, sizes, device)
    if not sizes.tiny:  # the dry run skips compilation, which alone takes a minute on a CPU
        model.backbone.compile()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, fused=device.type == "cuda")
    x, g = tokens(sizes, device), generator(device)

    def step() -> None:
        with autocast(device, device.type == "cuda"):
            loss = model.loss(x, generator=g).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    start = time.perf_counter()
    for _ in range(sizes.warmup):
        step()
    sync(device)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(sizes.steps):
        step()
    sync(device)
    seconds = (time.perf_counter() - start) / sizes.steps
    tokens_per_s = sizes.batch * sizes.seq_len / seconds
    flops = model.backbone.num_flops_per_token(sizes.seq_len)
    memory = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"compiled": not sizes.tiny, "batch": sizes.batch, "seq_len": sizes.seq_len, "vocab": sizes.vocab,
            "parameters": model.num_parameters(), "warmup_and_compile_s": compile_s, "step_s": seconds,
            "tokens_per_s": tokens_per_s, "flops_per_token": flops, "mfu": flops * tokens_per_s / peak,
            "peak_memory_gib": memory}


def check_sample(sizes: Sizes, device: torch.device) -> dict:
    from dlm.cache import get_cache
    from dlm.sample import generate, get_sampler

    model = build("masked_elbo", sizes, device).eval()
    prompt = tokens(sizes, device, sizes.sample_batch)[:, : sizes.prompt]
    new = sizes.seq_len - sizes.prompt
    out, decoded = {}, {}
    for name in ("none", "dkv_decode"):
        sampler = get_sampler("confidence", temperature=0.0, block_size=32)
        runs = []
        for _ in range(sizes.repeats):
            start = time.perf_counter()
            with torch.no_grad(), autocast(device, device.type == "cuda"):
                ids = generate(model, model.process, sampler, steps=new // 2, shape=(sizes.sample_batch,
                               sizes.seq_len), prompt=prompt, cache=None if name == "none" else get_cache(name))
            sync(device)
            runs.append(time.perf_counter() - start)
        decoded[name] = ids
        out[name] = {"seconds": runs[-1], "tokens_per_s": sizes.sample_batch * new / runs[-1], "steps": new // 2}
    out["dkv_speedup"] = out["none"]["seconds"] / out["dkv_decode"]["seconds"]
    out["dkv_token_agreement"] = (decoded["none"] == decoded["dkv_decode"]).float().mean().item()
    return out


def run_check(report: dict, name: str, fn: Callable[[], dict], path: Path) -> None:
    """fn() into report[name] (or its error and traceback tail), timed; the JSON is rewritten after each."""
    start = time.perf_counter()
    try:
        report["checks"][name] = {"ok": True, **fn()}
    except Exception as err:  # recorded, never fatal: the remaining checks still run
        report["checks"][name] = {"ok": False, "error": f"{type(err).__name__}: {err}".splitlines()[0][:500],
                                  "traceback": traceback.format_exc().splitlines()[-6:]}
    check = report["checks"][name]
    check["seconds"] = time.perf_counter() - start
    status = f"skipped ({check['skipped']})" if "skipped" in check else "ok" if check["ok"] else "FAILED"
    print(f"[gpu_check] {name}: {status} ({check['seconds']:.1f}s)", flush=True)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    path.write_text(json.dumps(report, indent=2) + "\n")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on any device (CPU smoke test)")
    parser.add_argument("--batch", type=int, default=Sizes.batch, help="training rows per step")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():  # full sizes on a CPU would run for many minutes
        print(NO_CUDA, flush=True)
        return {"device": None, "dry_run": False, "checks": {}, "note": NO_CUDA}
    sizes = TINY if args.dry_run else dataclasses.replace(Sizes(), batch=args.batch)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    path = Path(args.out_dir) / ("gpu_check_dry_run.json" if args.dry_run else "gpu_check.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
              "torch": torch.__version__, "dry_run": args.dry_run, "sizes": dataclasses.asdict(sizes), "checks": {}}
    peak, source = peak_flops(device)
    report.update(peak_flops=peak, peak_source=source)
    run_check(report, "flash_vs_sdpa", lambda: check_flash(sizes, device), path)
    run_check(report, "bf16_vs_fp32", lambda: check_bf16(sizes, device), path)
    for objective in OBJECTIVES:
        run_check(report, f"train_{objective}", lambda o=objective: check_train(o, sizes, device, peak), path)
    run_check(report, "sample_dkv", lambda: check_sample(sizes, device), path)
    return report


if __name__ == "__main__":
    main()
