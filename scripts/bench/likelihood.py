"""Likelihood fidelity of MDLM vs SEDD-absorbing: controlled training runs and their ablations.

Each run trains one configuration (a shipped run config + overrides) for a fixed budget on one thread and records
the validation bound (nats/token, the trainer's bound over eval_batches batches), the parameter count, the
gradient-norm trace (every step) and the fraction of steps whose norm exceeded train.grad_clip. Results are
merged into the output JSON keyed by (corpus, setting, seed), so an interrupted sweep can be continued.

    python -m scripts.bench.likelihood --quick                      # seconds: tiny model, 1 seed
    python -m scripts.bench.likelihood --settings mdlm_tc,sedd_strat --seeds 0,1,2 --corpora shakespeare,ptb
    python -m scripts.bench.likelihood --common-bound               # + every run's bound under one paired evaluator
    python -m scripts.bench.likelihood --variance runs/likelihood/<run>/final   # fixed-weight loss/gradient noise
    python -m scripts.bench.likelihood --table                      # print the table of the JSON

Writes runs/likelihood/likelihood.json by default; --publish writes benchmarks/likelihood.json.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import time
from pathlib import Path

import torch

from dlm.config import load_config
from dlm.data import build_batches
from dlm.data.paths import data_dir
from dlm.diffusion_lm import DiffusionLM
from dlm.objectives.time_sampling import get_time_sampler
from dlm.train.log import read_metrics
from dlm.train.loop import train

ROOT = Path(__file__).resolve().parents[2]

# corpus -> data overrides (character level: the same model and vocabulary size class on both)
CORPORA = {
    "shakespeare": [],
    "ptb": ["data.source=ptb", "data.val_source=ptb"],
}

# setting -> (run config, overrides). "Equal conditions": same backbone, time conditioning and sampler.
SETTINGS = {
    "mdlm_notc": ("shakespeare_mdlm", []),
    "mdlm_tc": ("shakespeare_mdlm", ["objective.time_conditioning=true"]),
    "mdlm_tc_uniform": ("shakespeare_mdlm", ["objective.time_conditioning=true", "objective.time_sampler=uniform"]),
    "sedd_uniform": ("shakespeare_sedd", []),
    "sedd_strat": ("shakespeare_sedd", ["objective.time_sampler=stratified"]),
}


def run_one(corpus: str, setting: str, seed: int, *, steps: int, model: str, eval_batches: int,
            extra: list[str]) -> dict:
    """Train one configuration; -> the record (bound, parameters, grad-norm trace summary, wall time)."""
    config, overrides = SETTINGS[setting]
    name = f"{corpus}_{setting}{'_'.join(['', *extra])}_{model}{steps}_s{seed}".replace("/", "-")
    out_dir = ROOT / "runs" / "likelihood" / name
    shutil.rmtree(out_dir, ignore_errors=True)
    cfg = load_config(ROOT / "configs" / "runs" / f"{config}.yaml", [
        *CORPORA[corpus], *overrides, *extra, f"model={model}", f"train.steps={steps}", f"train.seed={seed}",
        f"train.eval_batches={eval_batches}", f"train.eval_every={steps}", "train.log_every=1",
        f"train.save_every={steps}", "train.progress=false", f"train.out_dir={out_dir}"])
    start = time.time()
    summary = train(cfg)
    wall = time.time() - start
    norms = [r["grad_norm"] for r in read_metrics(out_dir / "metrics.jsonl") if "grad_norm" in r]
    clip = cfg.train.grad_clip
    shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    return {"corpus": corpus, "setting": setting, "seed": seed, "steps": steps, "model": model, "run": str(out_dir),
            "overrides": [*overrides, *extra], "val_nll": summary["val_nll"],
            "num_parameters": summary["num_parameters"], "wall_s": round(wall, 1),
            "clip_fraction": sum(n > clip for n in norms) / max(1, len(norms)) if clip > 0 else 0.0,
            "grad_norm_median": statistics.median(norms), "grad_norm_trace": [round(n, 4) for n in norms]}


def common_bound(final_dir: Path, *, batches: int = 16, n_t: int = 4, seed: int = 1234) -> float:
    """Per-token bound of a trained model on its first `batches` validation batches with the library's evaluator
    (dlm/eval/likelihood.py: n_t stratified times per sequence), the same x0 and generator seed for every model, so
    that models compare on one low-variance, paired estimate (the trainer's bound draws one t per sequence)."""
    from dlm.eval.likelihood import elbo

    model = DiffusionLM.from_pretrained(str(final_dir))
    cfg = model.config
    _, val = build_batches(cfg.data, model.tokenizer, cfg.train.batch_size, seed=0)
    generator = torch.Generator().manual_seed(seed)
    total = count = 0.0
    for _, batch in zip(range(batches), val):
        x0 = batch["input_ids"]
        total += float(elbo(model, model.process, x0, n_t=n_t, generator=generator).sum())
        count += x0.numel()
    return total / count


def fixed_weight_stats(final_dir: Path, *, draws: int = 24, batches: int = 4, seed: int = 0) -> dict:
    """Monte Carlo noise of the training loss and its gradient at the FIXED weights of a trained model.

    On `batches` validation batches, `draws` independent (t, x_t) draws each under the model's own objective, with
    each time sampler: loss_std (std of the per-batch loss estimate), grad_rel_var = E|g - E g|^2 / |E g|^2 (the
    noise-to-signal ratio of one step's gradient) and grad_norm (mean |g|). For an absorbing score model also the
    mass gap: its bound minus the MDLM bound of its normalized prediction, sigma' r (e^c - 1 - c) per token
    (docs/likelihood_fidelity.md).
    """
    model = DiffusionLM.from_pretrained(str(final_dir))
    cfg = model.config
    _, val = build_batches(cfg.data, model.tokenizer, cfg.train.batch_size, seed=seed)
    x0s = [batch["input_ids"] for _, batch in zip(range(batches), val)]
    params = [p for p in model.parameters() if p.requires_grad]
    result = {"model": str(final_dir), "objective": cfg.objective.name, "draws": draws, "batches": batches}
    for name in ("stratified", "uniform"):
        model.objective.time_sampler = get_time_sampler(name)
        generator = torch.Generator().manual_seed(seed)
        stds, rel_vars, norms = [], [], []
        for x0 in x0s:
            grads, losses = [], []
            for _ in range(draws):
                model.zero_grad(set_to_none=True)
                out = model.loss(x0, generator=generator)
                out.loss.backward()
                grads.append(torch.cat([p.grad.flatten() for p in params if p.grad is not None]))
                losses.append(out.loss.item())
            g = torch.stack(grads)
            mean = g.mean(0)
            stds.append(statistics.stdev(losses))
            rel_vars.append(float(((g - mean) ** 2).sum(1).mean() / mean.square().sum()))
            norms.append(float(g.norm(dim=1).mean()))
        result[name] = {"loss_std": statistics.mean(stds), "grad_rel_var": statistics.mean(rel_vars),
                        "grad_norm": statistics.mean(norms)}
    if cfg.objective.name == "score_entropy" and cfg.process.name == "absorbing":
        generator = torch.Generator().manual_seed(seed)
        result["mass_gap"] = statistics.mean(mass_gap(model, x0, generator) for x0 in x0s)
    return result


@torch.no_grad()
def mass_gap(model: DiffusionLM, x0: torch.Tensor, generator: torch.Generator) -> float:
    """Per-token (SEDD bound - MDLM bound of the normalized prediction) of a score model on x0, one (t, x_t) draw."""
    from dlm.process.absorbing import masked_integrand
    objective, process = model.objective, model.process
    t = objective.sample_times(x0.shape[0], generator=generator, device=x0.device)
    xt = process.corrupt(x0, t, generator=generator)
    logits = model(xt, t, raw=True)
    sedd = objective.integrand(logits, x0, xt, t).double()
    log_x = torch.log_softmax(logits.double().index_fill(-1, torch.tensor([process.mask_id]), float("-inf")), -1)
    mdlm = masked_integrand(log_x, x0, xt, process.mask_id, process.schedule.masked_weight(t.double()))
    return float((sedd - mdlm).mean())


def table(records: list[dict]) -> str:
    """Mean +- standard error of the bound per (corpus, setting), with the seeds and run details."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["corpus"], r["setting"], r["model"], r["steps"]), []).append(r)
    lines = [f"{'corpus':12s} {'setting':28s} {'model':6s} {'steps':>5s} {'params':>8s} {'bound':>8s} "
             f"{'se':>6s} {'paired':>8s} {'n':>2s} {'clip%':>6s} {'|g| med':>7s}"]
    for (corpus, setting, model, steps), rs in sorted(groups.items()):
        vals = [r["val_nll"] for r in rs]
        se = statistics.stdev(vals) / math.sqrt(len(vals)) if len(vals) > 1 else float("nan")
        clip = statistics.mean(r["clip_fraction"] for r in rs)
        med = statistics.mean(r["grad_norm_median"] for r in rs)
        paired = [r["common_bound"] for r in rs if "common_bound" in r]
        paired_mean = statistics.mean(paired) if len(paired) == len(rs) else float("nan")
        lines.append(f"{corpus:12s} {setting:28s} {model:6s} {steps:5d} {rs[0]['num_parameters']:8d} "
                     f"{statistics.mean(vals):8.4f} {se:6.4f} {paired_mean:8.4f} {len(vals):2d} "
                     f"{100 * clip:6.1f} {med:7.3f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="mdlm_tc,sedd_strat", help="comma-separated names of SETTINGS")
    parser.add_argument("--corpora", default="shakespeare", help="comma-separated: shakespeare, ptb")
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--model", default="small", help="model preset (configs/model/)")
    parser.add_argument("--eval-batches", type=int, default=16)
    parser.add_argument("--tag", default="", help="suffix of the setting name for runs with --override")
    parser.add_argument("--override", action="append", default=[], help="extra config override (repeatable)")
    parser.add_argument("--quick", action="store_true", help="tiny model, 60 steps, 2 eval batches: a smoke run")
    parser.add_argument("--out", default=str(ROOT / "runs" / "likelihood" / "likelihood.json"))
    parser.add_argument("--publish", action="store_true", help="write benchmarks/likelihood.json instead")
    parser.add_argument("--table", action="store_true", help="print the table of --out and exit")
    parser.add_argument("--common-bound", action="store_true",
                        help="add every run's bound under one paired evaluator (common_bound) to --out")
    parser.add_argument("--variance", nargs="+", default=[], metavar="RUN",
                        help="fixed-weight loss/gradient noise of trained runs (their final/ dirs); appended to --out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(ROOT / "benchmarks" / "likelihood.json" if args.publish else args.out)
    records = json.loads(out.read_text())["runs"] if out.is_file() else []
    if args.table:
        print(table(records))
        return
    if args.common_bound:
        for record in records:
            final = Path(record.get("run", "")) / "final"
            if "common_bound" not in record and final.is_dir():
                record["common_bound"] = common_bound(final)
                print(record["corpus"], record["setting"], record["seed"], f"{record['common_bound']:.4f}", flush=True)
        document = json.loads(out.read_text())
        out.write_text(json.dumps({**document, "runs": records}, indent=1) + "\n")
        return
    if args.variance:
        document = json.loads(out.read_text()) if out.is_file() else {"runs": records}
        for run in args.variance:
            stats = fixed_weight_stats(Path(run))
            print(json.dumps(stats), flush=True)
            document.setdefault("fixed_weights", []).append(stats)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(document, indent=1) + "\n")
        return
    if args.quick:
        args.model, args.steps, args.eval_batches = "tiny", 60, 2
    for corpus in args.corpora.split(","):
        if corpus == "ptb" and not (data_dir() / "ptb").is_dir():
            print(f"skip ptb: no {data_dir() / 'ptb'} (set $DLM_DATA_DIR)")
            continue
        for setting in args.settings.split(","):
            for seed in map(int, args.seeds.split(",")):
                record = run_one(corpus, setting, seed, steps=args.steps, model=args.model,
                                 eval_batches=args.eval_batches, extra=args.override)
                record["setting"] = setting + args.tag
                records = [r for r in records if (r["corpus"], r["setting"], r["seed"], r["model"], r["steps"])
                           != (corpus, record["setting"], seed, args.model, args.steps)] + [record]
                out.parent.mkdir(parents=True, exist_ok=True)
                document = json.loads(out.read_text()) if out.is_file() else {}
                out.write_text(json.dumps({**document, "runs": records}, indent=1) + "\n")
                print(f"{corpus} {record['setting']} seed {seed}: bound {record['val_nll']:.4f} "
                      f"clip {record['clip_fraction']:.2f} ({record['wall_s']:.0f} s)", flush=True)
    print(table(records))


if __name__ == "__main__":
    main()
