"""Block diffusion (BD3LM, arXiv 2503.09573) benchmark: likelihood against every family, sampling cost against
length, and the two-stream training step's cost (docs/block_diffusion.md; issue 22's Benchmark section).

1. Likelihood (the Eso-LM paper's Table 1, arXiv 2506.01928, at our scale): one backbone, one training budget, the
   same char-level Tiny Shakespeare data for AR, MDLM, SEDD (absorbing), UDLM and BD3LM at L' = 4, 8, 16 from
   scratch, and BD3LM L' = 4 fine-tuned (train.init_from) from an MDLM trained for the rest of the same step budget.
   Each model is scored by `dlm eval ppl`'s machinery (dlm/eval/zero_shot.py) on the same held-out blocks of the
   held-out documents (data.val_fraction): the AR baseline exactly, block diffusion with its own estimator, the
   other diffusion families with the `many` estimator (n_t stratified times per sequence), each with its Monte Carlo
   standard error. Time conditioning: none for AR, MDLM and BD3LM (the BD3LM reference's default); SEDD needs it
   (its score depends on t) and UDLM uses it (the reference's setting), which adds the adaLN parameters: every
   family's parameter count is in the JSON. Reported: the fraction of the MDLM-to-AR gap BD3LM L' = 4 closes.
2. Sampling cost: wall time, NFE (backbone calls) and backbone tokens to generate L tokens at batch 1, for AR (KV
   cache), BD3LM L' = 4 and 16 (exact block KV cache, steps per block = L', so NFE = L denoising steps plus one
   clean pass per block) and MDLM (ancestral, NFE = L); random-weight models of the likelihood backbone with
   model.max_len = the largest L (rotary positions: max_len adds no parameters). The methods are interleaved in every
   round (order rotated). MDLM's steps all cost the same full-length forward, so its time is measured on
   min(L, --mdlm-steps) steps and scaled to NFE = L (`mdlm_steps_measured` says how many ran). Ratios to AR and the
   growth exponent (least-squares slope of log time against log L) per method.
3. Training step: time (median of --step-repeats forward + backward passes) and activation memory of BD3LM's
   two-stream forward against MDLM's at the same L, batch --step-batch. Memory is the bytes of the distinct tensors
   autograd saves for backward (torch.autograd.graph.saved_tensors_hooks, storages counted once): the part of peak
   memory that grows with L (the weights the backward reads are left out; parameters and gradients are the same
   for both).

One thread per process; --jobs training processes run side by side. Trained runs are kept under --runs and reused
when their settings match (an interrupted run continues). Times on a shared CPU are inflated by other jobs: read
the ratios; the load average is in the JSON.

    python -m scripts.bench.block --quick              # < 10 min on 2 idle cores: tiny backbone, a few steps
    python -m scripts.bench.block --publish --jobs 2   # full: benchmarks/bench_block.json + .png
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from scripts.bench.harness import REPO, median, results_path, write_outputs

# family -> (run config, overrides); every family is trained on the same backbone and data (PRESETS)
FAMILIES = {
    "ar": ("shakespeare_ar", []),
    "mdlm": ("shakespeare_mdlm", []),
    "sedd": ("shakespeare_sedd", []),
    "udlm": ("shakespeare_udlm", []),
    "bd3lm_4": ("shakespeare_bd3lm", ["objective.block_size=4"]),
    "bd3lm_8": ("shakespeare_bd3lm", ["objective.block_size=8"]),
    "bd3lm_16": ("shakespeare_bd3lm", ["objective.block_size=16"]),
}
FINETUNED = "bd3lm_4_ft"  # BD3LM L'=4 from the MDLM "mdlm_pre" (trained for the budget's first part)
ORDER = ["ar", "mdlm", "sedd", "udlm", "bd3lm_4", "bd3lm_8", "bd3lm_16", FINETUNED]

# mode -> backbone and budget. full: the small preset narrowed to d=128 (what fits the time on a shared CPU).
PRESETS = {
    "full": {"model": ["model=small", "model.d_model=128", "model.n_heads=4"], "seq_len": 128, "batch_size": 16,
             "steps": 300, "finetune_fraction": 0.25, "eval_blocks": 256, "n_t": 8, "lengths": [256, 512, 1024, 2048],
             "rounds": 2, "mdlm_steps": 32, "step_lengths": [128, 256, 512], "step_batch": 8, "step_repeats": 5},
    "quick": {"model": ["model=tiny"], "seq_len": 64, "batch_size": 8, "steps": 30, "finetune_fraction": 0.5,
              "eval_blocks": 16, "n_t": 2, "lengths": [64, 128, 256], "rounds": 1, "mdlm_steps": 8,
              "step_lengths": [64, 128], "step_batch": 4, "step_repeats": 2},
}


# ---------------------------------------------------------------------------------------------------- likelihood
def run_overrides(settings: dict, steps: int, out_dir: Path) -> list[str]:
    """The overrides every training run shares: backbone, data length, batch, budget, output folder."""
    return [*settings["model"], f"data.seq_len={settings['seq_len']}", f"train.batch_size={settings['batch_size']}",
            f"train.steps={steps}", f"train.warmup_steps={max(1, steps // 12)}", f"train.eval_every={steps}",
            "train.eval_batches=2", f"train.save_every={steps}", "train.log_every=10", "train.progress=false",
            f"train.seed={settings.get('seed', 0)}", f"train.out_dir={out_dir}"]


def train_run(name: str, config: str, overrides: list[str], settings: dict, steps: int, runs: Path) -> Path:
    """Train one run unless runs/<name> already holds one with the same settings; -> its final/ folder."""
    from dlm.config import load_config
    from dlm.train.loop import train

    out_dir = runs / name
    spec = {"config": config, "overrides": [*overrides, *run_overrides(settings, steps, out_dir)]}
    marker = out_dir / "bench_spec.json"
    if (out_dir / "final").is_dir() and marker.is_file() and json.loads(marker.read_text()) == spec:
        return out_dir / "final"
    shutil.rmtree(out_dir, ignore_errors=True)  # an unfinished or different run
    start = time.time()
    train(load_config(REPO / "configs" / "runs" / f"{config}.yaml", spec["overrides"]))
    marker.write_text(json.dumps({**spec}) + "\n")
    (out_dir / "train_seconds.txt").write_text(f"{time.time() - start:.1f}\n")
    return out_dir / "final"


def held_out_texts(model):
    """The held-out documents of the model's training data (data.val_fraction), as `dlm eval ppl` texts."""
    from dlm.data.splits import split_documents
    from dlm.eval.corpora import EvalTexts

    data = model.config.data
    return EvalTexts(data.source, "validation", split_documents(data)[1], f"last {data.val_fraction} of the "
                     f"documents of {data.source}", "")


def score(final: Path, settings: dict) -> dict:
    """`dlm eval ppl`'s bound of one checkpoint on the held-out blocks (the same tokens for every family)."""
    from dlm.diffusion_lm import DiffusionLM
    from dlm.eval.zero_shot import zero_shot_perplexity

    model = DiffusionLM.from_pretrained(str(final)).eval()
    result = zero_shot_perplexity(model, held_out_texts(model), estimator="many", n_t=settings["n_t"],
                                  max_blocks=settings["eval_blocks"], seed=0, progress=False)
    objective = model.config.objective
    return {"nll": result["nll"], "nll_se": result["nll_se"], "ppl": result["ppl"], "tokens": result["num_tokens"],
            "se_method": result["se_method"], "estimator": result["estimator"], "n_t": result["n_t"],
            "blocks_sha1": result["blocks_sha1"],
            "num_parameters": model.num_parameters(), "objective": objective.name,
            "time_conditioning": bool(model.objective.time_conditioning),
            "block_size": getattr(objective, "block_size", None) if objective.name == "block_diffusion" else None}


def train_and_score(family: str, settings: dict, runs: str) -> dict:
    """One table row: train (or reuse) the family's run and score it. Runs in a worker process, one thread."""
    torch.set_num_threads(1)
    runs = Path(runs)
    steps = settings["steps"]
    if family == FINETUNED:
        pre_steps = round(steps * (1 - settings["finetune_fraction"]))
        pre = train_run("mdlm_pre", "shakespeare_mdlm", [], settings, pre_steps, runs)
        final = train_run(family, "shakespeare_bd3lm", ["objective.block_size=4", f"train.init_from={pre}"],
                          settings, steps - pre_steps, runs)
        budget = {"pretrain_steps (MDLM)": pre_steps, "finetune_steps": steps - pre_steps}
    else:
        config, overrides = FAMILIES[family]
        final = train_run(family, config, overrides, settings, steps, runs)
        budget = {}
    seconds = [float((p.parent / "train_seconds.txt").read_text()) for p in
               ([runs / "mdlm_pre" / "final"] if family == FINETUNED else []) + [final]
               if (p.parent / "train_seconds.txt").is_file()]
    scored = final.parent / "bench_score.json"  # the score of these weights with these evaluation settings
    spec = {"weights": (final / "model.safetensors").stat().st_mtime_ns,
            "eval": [settings["eval_blocks"], settings["n_t"]]}
    if scored.is_file() and json.loads(scored.read_text())["spec"] == spec:
        result = json.loads(scored.read_text())["score"]
    else:
        result = score(final, settings)
        scored.write_text(json.dumps({"spec": spec, "score": result}) + "\n")
    row = {"family": family, "checkpoint": str(final), "steps": steps, **budget, **result,
           "train_seconds": round(sum(seconds), 1)}
    print(f"{family:11s} bound {row['nll']:.4f} +- {row['nll_se']:.4f} nats/char ({row['num_parameters']:,} "
          f"parameters, {row['train_seconds']:.0f} s)", flush=True)
    return row


def gap_closed(rows: dict[str, dict], family: str = "bd3lm_4") -> dict:
    """Fraction (MDLM - family) / (MDLM - AR) of the MDLM-to-AR gap the family closes, with its delta-method
    standard error (the three estimates taken as independent; AR's is exact)."""
    a, m, b = (rows[k]["nll"] for k in ("ar", "mdlm", family))
    sa, sm, sb = (rows[k]["nll_se"] for k in ("ar", "mdlm", family))
    gap = m - a
    fraction = (m - b) / gap
    se = math.sqrt((sb / gap) ** 2 + (sm * (b - a) / gap ** 2) ** 2 + (sa * (m - b) / gap ** 2) ** 2)
    return {"family": family, "fraction": fraction, "fraction_se": se}


def likelihood_table(settings: dict, runs: Path, jobs: int, families: list[str] = ORDER) -> list[dict]:
    """The rows of `families` (in ORDER), trained `jobs` at a time (the costliest first)."""
    queue = sorted(families, key=lambda f: not f.startswith("bd3lm"))
    if jobs <= 1:
        rows = [train_and_score(f, settings, str(runs)) for f in queue]
    else:
        import multiprocessing

        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows = list(pool.map(train_and_score, queue, [settings] * len(queue), [str(runs)] * len(queue)))
    by_family = {r["family"]: r for r in rows}
    return [by_family[f] for f in ORDER if f in by_family]


def gap_fractions(by_family: dict[str, dict]) -> dict:
    """The published gap fields the trained families allow: BD3LM L'=4 from scratch and fine-tuned (both need AR
    and MDLM rows)."""
    fields = {"gap_closed": "bd3lm_4", "gap_closed_finetuned": FINETUNED}
    if not {"ar", "mdlm"} <= by_family.keys():
        return {}
    return {field: gap_closed(by_family, family) for field, family in fields.items() if family in by_family}


def family_list(text: str) -> list[str]:
    """--families: a comma list of ORDER's names, in ORDER; a one-line error for an unknown name."""
    families = [f for f in text.split(",") if f]
    unknown = sorted(set(families) - set(ORDER))
    if unknown or not families:
        raise argparse.ArgumentTypeError(f"unknown families {unknown or text!r}; choose from {','.join(ORDER)}")
    return [f for f in ORDER if f in families]


# ------------------------------------------------------------------------------------------------ sampling cost
def random_model(config: str, overrides: list[str], settings: dict, max_len: int):
    """A random-weight DiffusionLM of the benchmark backbone with model.max_len = max_len (char vocabulary)."""
    from dlm.config import load_config
    from dlm.data.splits import tokenizer_from_config
    from dlm.diffusion_lm import DiffusionLM

    cfg = load_config(REPO / "configs" / "runs" / f"{config}.yaml",
                      [*overrides, *settings["model"], f"model.max_len={max_len}"])
    tokenizer = tokenizer_from_config(cfg.data)
    torch.manual_seed(0)
    return DiffusionLM.from_config(cfg, len(tokenizer), tokenizer=tokenizer).eval()


class BackboneMeter:
    """Backbone calls (NFE) and the query tokens they process, counted by a forward pre-hook while attached."""

    def __init__(self, model):
        self.calls = self.tokens = 0
        self.handle = model.backbone.register_forward_pre_hook(self._count)

    def _count(self, module, args) -> None:
        self.calls += 1
        self.tokens += args[0].numel()

    def close(self) -> tuple[int, int]:
        self.handle.remove()
        return self.calls, self.tokens


def generate_once(method: str, model, length: int, mdlm_steps: int) -> dict:
    """One batch-1 generation of `length` tokens: seconds (MDLM: scaled to NFE = L), NFE, backbone tokens."""
    from dlm.sample import generate, get_sampler

    generator = torch.Generator().manual_seed(0)
    kwargs = {"shape": (1, length), "generator": generator}
    if method == "ar":
        bos = model.tokenizer.bos_token_id
        sampler, steps, kwargs["prompt"] = get_sampler("autoregressive"), length, torch.tensor([[bos]])
    elif method.startswith("bd3lm"):
        sampler = model.objective.sampler("ancestral")
        steps = model.objective.block_size  # per block: L denoising steps in all
    else:
        sampler, steps = get_sampler("ancestral"), min(length, mdlm_steps)
    meter = BackboneMeter(model)
    start = time.perf_counter()
    with torch.no_grad():
        generate(model, model.process, sampler, steps=steps, **kwargs)
    seconds = time.perf_counter() - start
    calls, tokens = meter.close()
    scale = length / steps if method == "mdlm" else 1  # every MDLM step is the same full-length forward
    return {"seconds": seconds * scale, "nfe": calls * scale, "backbone_tokens": tokens * scale}


SAMPLING_METHODS = {"ar": ("shakespeare_ar", []), "bd3lm_4": ("shakespeare_bd3lm", ["objective.block_size=4"]),
                    "bd3lm_16": ("shakespeare_bd3lm", ["objective.block_size=16"]), "mdlm": ("shakespeare_mdlm", [])}


def sampling_cost(settings: dict) -> dict:
    """Interleaved batch-1 generation at every length; -> per method and length the median time, NFE, tokens and
    ratio to AR, and per method the growth exponent."""
    lengths = settings["lengths"]
    models = {m: random_model(c, o, settings, max(lengths)) for m, (c, o) in SAMPLING_METHODS.items()}
    methods = list(models)
    samples: dict[tuple[str, int], list[dict]] = {}
    for r in range(settings["rounds"]):
        for length in lengths:
            for method in methods[r % len(methods):] + methods[:r % len(methods)]:
                samples.setdefault((method, length), []).append(
                    generate_once(method, models[method], length, settings["mdlm_steps"]))
    rows = []
    for (method, length), runs in sorted(samples.items(), key=lambda kv: (methods.index(kv[0][0]), kv[0][1])):
        seconds = median([s["seconds"] for s in runs])
        ar = median([s["seconds"] for s in samples[("ar", length)]])
        rows.append({"method": method, "length": length, "seconds": seconds, "seconds_runs": [s["seconds"] for s in
                     runs], "ratio_to_ar": seconds / ar, "nfe": runs[0]["nfe"],
                     "backbone_tokens": runs[0]["backbone_tokens"],
                     **({"mdlm_steps_measured": min(length, settings["mdlm_steps"])} if method == "mdlm" else {})})
    exponents = {}
    for method in methods:
        times = [r["seconds"] for r in rows if r["method"] == method]
        exponents[method] = float(np.polyfit(np.log(lengths), np.log(times), 1)[0])
    for row in rows:
        print(f"{row['method']:9s} L={row['length']:5d} {row['seconds']:8.2f} s  x{row['ratio_to_ar']:6.2f} AR  "
              f"NFE {row['nfe']:6.0f}  tokens {row['backbone_tokens']:9.0f}", flush=True)
    print("growth exponents: " + ", ".join(f"{m} {e:.2f}" for m, e in exponents.items()), flush=True)
    return {"rows": rows, "growth_exponent": exponents,
            "parameters": {m: model.num_parameters() for m, model in models.items()}}


# -------------------------------------------------------------------------------------------- training step cost
def training_step(model, x0: torch.Tensor, generator: torch.Generator) -> None:
    """One forward + backward of the model's training loss on x0 (B, L)."""
    model.zero_grad(set_to_none=True)
    model.loss(x0, generator=generator).loss.backward()


def saved_activation_bytes(step: Callable[[], None], parameters) -> int:
    """Bytes of the distinct tensors autograd saves for backward while `step()` runs its forward, the model's
    `parameters` left out (activations only)."""
    weights = {p.untyped_storage().data_ptr() for p in parameters}
    storages: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        step()
    return sum(storages.values())


def training_step_cost(settings: dict) -> list[dict]:
    """BD3LM L'=4 two-stream forward + backward against MDLM's at each length: median time and saved activations."""
    rows = []
    for length in settings["step_lengths"]:
        models = {m: random_model(c, o, settings, length).train() for m, (c, o) in SAMPLING_METHODS.items()
                  if m in ("mdlm", "bd3lm_4")}
        x0 = torch.randint(0, models["mdlm"].vocab_size - 1, (settings["step_batch"], length),
                           generator=torch.Generator().manual_seed(0))
        seconds: dict[str, list[float]] = {m: [] for m in models}
        memory = {}
        for r in range(settings["step_repeats"]):
            for method in (list(models) if r % 2 == 0 else list(models)[::-1]):
                step = functools.partial(training_step, models[method], x0, torch.Generator().manual_seed(r))
                start = time.perf_counter()
                memory[method] = saved_activation_bytes(step, models[method].parameters())
                seconds[method].append(time.perf_counter() - start)
        row = {"length": length, "batch": settings["step_batch"]}
        for method in models:
            row[f"{method}_seconds"] = median(seconds[method])
            row[f"{method}_activation_bytes"] = memory[method]
        row["time_ratio"] = row["bd3lm_4_seconds"] / row["mdlm_seconds"]
        row["memory_ratio"] = row["bd3lm_4_activation_bytes"] / row["mdlm_activation_bytes"]
        print(f"train step L={length}: BD3LM/MDLM time x{row['time_ratio']:.2f}, activations "
              f"x{row['memory_ratio']:.2f}", flush=True)
        rows.append(row)
    return rows


# -------------------------------------------------------------------------------------------------------- output
def plot(payload: dict, path: Path) -> None:
    """(a) held-out bound +- 1 s.e. per family; (b) generation time against L, log-log, per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    rows = payload["likelihood"]["rows"]
    names = [r["family"] for r in rows]
    left.bar(names, [r["nll"] for r in rows], yerr=[r["nll_se"] for r in rows], capsize=4,
             color=["grey" if n == "ar" else "tab:blue" if n.startswith("bd3lm") else "tab:orange" for n in names])
    low = min(r["nll"] for r in rows)
    left.set_ylim(low * 0.9, max(r["nll"] + r["nll_se"] for r in rows) * 1.03)
    gap = payload["likelihood"]["gap_closed"]
    left.set(ylabel="held-out bound, nats/char (+- 1 s.e.)",
             title=f"(a) likelihood, {payload['likelihood']['steps']} steps; BD3LM L'=4 closes "
                   f"{100 * gap['fraction']:.0f}% of the MDLM-AR gap")
    left.tick_params(axis="x", rotation=30)
    cost = payload["sampling"]
    for method, exponent in cost["growth_exponent"].items():
        points = [r for r in cost["rows"] if r["method"] == method]
        right.plot([r["length"] for r in points], [r["seconds"] for r in points], "o-",
                   label=f"{method} (slope {exponent:.2f})")
    right.set(xscale="log", yscale="log", xlabel="generated length L (batch 1)", ylabel="seconds",
              title="(b) sampling time, NFE = L (MDLM scaled from its measured steps)")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny backbone, a few steps, small lengths")
    parser.add_argument("--steps", type=int, default=0, help="training steps of every family (0: the preset's)")
    parser.add_argument("--families", type=family_list, default=ORDER,
                        help=f"comma-separated likelihood rows to train and score (default all: {','.join(ORDER)})")
    parser.add_argument("--seed", type=int, default=0, help="train.seed of every family's run")
    parser.add_argument("--jobs", type=int, default=1, help="training processes side by side (one thread each)")
    parser.add_argument("--runs", default="", help="where the trained runs go (default runs/bench_block[_quick])")
    parser.add_argument("--parts", default="likelihood,sampling,train_step", help="comma-separated parts to run")
    parser.add_argument("--merge", default="", help="an earlier run's JSON: the parts this run skips come from it "
                        "(each with that run's provenance), so parts measured separately publish together")
    parser.add_argument("--out", default="", help="writes OUT.json and OUT.png (default runs/bench_block)")
    parser.add_argument("--publish", action="store_true", help="write benchmarks/bench_block instead")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    mode = "quick" if args.quick else "full"
    settings = {**PRESETS[mode], "seed": args.seed, **({"steps": args.steps} if args.steps else {})}
    runs = Path(args.runs or REPO / "runs" / f"bench_block{'_quick' if args.quick else ''}")
    runs.mkdir(parents=True, exist_ok=True)
    parts = args.parts.split(",")
    load = [os.getloadavg()]
    payload: dict = {"mode": mode, "settings": settings}
    if "likelihood" in parts:
        rows = likelihood_table(settings, runs, args.jobs, args.families)
        by_family = {r["family"]: r for r in rows}
        payload["likelihood"] = {
            "steps": settings["steps"], "data": "char-level Tiny Shakespeare (data.val_fraction held out)",
            "same_scored_tokens": len({r["blocks_sha1"] for r in rows}) == 1, "rows": rows,
            **gap_fractions(by_family),
            "time_conditioning": "none for AR, MDLM and BD3LM; adaLN on sigma(t) for SEDD (required) and UDLM"}
        load.append(os.getloadavg())
    if "sampling" in parts:
        payload["sampling"] = sampling_cost(settings)
        load.append(os.getloadavg())
    if "train_step" in parts:
        memory = "bytes of the distinct non-parameter tensors saved for backward (saved_tensors_hooks)"
        payload["train_step"] = {"memory": memory, "rows": training_step_cost(settings)}
        load.append(os.getloadavg())
    payload["loadavg"] = load
    if args.merge:
        earlier = json.loads(Path(args.merge).read_text())
        for part in ("likelihood", "sampling", "train_step"):
            if part not in payload and part in earlier:
                payload[part] = {**earlier[part], "measured_by": earlier["provenance"], "loadavg": earlier["loadavg"]}
    payload["threads"] = torch.get_num_threads()
    out = args.out or results_path("bench_block", publish=args.publish)
    complete = all(p in payload for p in ("likelihood", "sampling"))
    write_outputs(out, payload, (lambda path: plot(payload, path)) if complete else None,
                  command="python -m scripts.bench.block", arguments=vars(args))
    return payload


if __name__ == "__main__":
    main()
