"""The training loop: `train(cfg, resume=...)` builds tokenizer, data, model, optimizer and EMA, then runs
cfg.train.steps optimizer steps with gradient accumulation, periodic validation, logging and checkpoints.

Loss of a step: the per-token mean of the training bound over every non-pad token of the global batch (summed
over micro-batches and ranks, then divided by their total token count). Validation: the same bound summed over
cfg.train.eval_batches validation batches with generators of a fixed seed (comparable across steps), under the
EMA weights when EMA is on; val_ppl = exp(val_nll) is a perplexity upper bound.
All randomness is keyed by (seed, step, shard) (dlm/train/parallel.py), so a resumed run is bit-identical on
the CPU; torch's global RNG (used by dropout) is seeded per shard inside `torch.random.fork_rng`, and the
caller's RNG state is restored when train() returns.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from dlm.config import RunConfig, save_config
from dlm.data import TokenBatches, build_batches, tokenizer_from_config
from dlm.diffusion_lm import DiffusionLM
from dlm.registry import ConfigError
from dlm.train.checkpoint import (
    FINAL_DIR,
    MODEL_DIR,
    check_model_dir,
    checkpoint_root,
    clean_interrupted_writes,
    has_checkpoints,
    latest_checkpoint,
    model_dir_readable,
    newest_checkpoint,
    resume_state,
    save_checkpoint,
    write_dir_atomically,
)
from dlm.train.ema import EMA
from dlm.train.init_from import init_from
from dlm.train.log import MetricsLogger, Throughput, check_tensorboard
from dlm.train.optim import build_optimizer, build_scheduler, clip_gradients, lr_multiplier
from dlm.train.parallel import (
    Dist,
    Parallel,
    all_reduce_sum,
    barrier,
    check_layout,
    init_distributed,
    shard_seed,
    shutdown,
)
from dlm.train.resume import CONFIG_FILE, check_fresh_start, check_resume_config, saved_config

NONFINITE_RULES = ("stop", "skip")
_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


class TrainingDiverged(ConfigError):
    """A non-finite loss or gradient norm under train.on_nonfinite=stop; no checkpoint holds non-finite weights."""


@dataclass
class Trainer:
    """Everything one run holds. `model` is the DiffusionLM (sharded in place under FSDP2)."""

    cfg: RunConfig
    dist: Dist
    model: DiffusionLM
    parallel: Parallel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    ema: EMA | None
    train_batches: TokenBatches
    val_batches: TokenBatches
    generator: torch.Generator
    out_dir: Path
    padded: bool  # pad mode: batches carry attention masks
    step: int = 0
    elapsed: float = 0.0
    skipped: int = 0  # updates dropped for a non-finite loss or grad norm (train.on_nonfinite=skip)
    logger: MetricsLogger | None = None


def train(cfg: RunConfig, *, resume: bool = False) -> dict[str, Any]:
    """Train (or, with resume=True, continue from out_dir/checkpoints/latest) and export out_dir/final.

    Returns {"steps", "train_loss", "val_nll", "val_ppl", "uniform_nll", "tokens_per_s", "elapsed_s",
    "num_parameters", "out_dir", "final_dir"}; val_nll and train_loss are per-token bounds in nats, uniform_nll is
    log(vocab size), the bound of a uniform guess. Bad input raises a one-line ConfigError.
    Under torchrun every rank calls this; rank 0 writes the files.
    """
    check_config(cfg)
    dist = init_distributed()
    try:
        check_layout(cfg.train, dist)
        with torch.random.fork_rng(devices=[dist.device] if dist.device.type == "cuda" else []):
            trainer = build_trainer(cfg, dist, resume=resume)
            try:
                return run(trainer)
            finally:
                trainer.logger.close()
    finally:
        shutdown(dist)


def check_config(cfg: RunConfig) -> None:
    """Cheap checks before any data is read: one-line ConfigError for settings that cannot work."""
    t, d, m = cfg.train, cfg.data, cfg.model
    if d.seq_len > m.max_len:
        raise ConfigError(f"data.seq_len={d.seq_len} exceeds model.max_len={m.max_len}: the model has no positions "
                          "beyond max_len; lower data.seq_len or raise model.max_len")
    for key in ("steps", "eval_batches", "log_every"):
        if getattr(t, key) < 1:
            raise ConfigError(f"train.{key}={getattr(t, key)} must be at least 1")
    for key in ("eval_every", "save_every", "grad_clip", "weight_decay", "ema"):
        if getattr(t, key) < 0:
            raise ConfigError(f"train.{key}={getattr(t, key)} must be >= 0 (0 disables it)")
    if t.on_nonfinite not in NONFINITE_RULES:
        raise ConfigError(f"train.on_nonfinite='{t.on_nonfinite}' must be one of: {', '.join(NONFINITE_RULES)}")
    if t.tensorboard:
        check_tensorboard()
    try:  # names, process / objective pairing and shapes, without allocating weights
        with torch.device("meta"):
            DiffusionLM.from_config(cfg, vocab_size=256)
    except ValueError as err:
        raise ConfigError(str(err).splitlines()[0]) from None


def build_trainer(cfg: RunConfig, dist: Dist, *, resume: bool) -> Trainer:
    """Tokenizer, data, model, optimizer, EMA and logger; restores the latest checkpoint when resume=True."""
    out_dir = Path(cfg.train.out_dir)
    root = checkpoint_root(out_dir)
    if not resume and (has_checkpoints(root) or (out_dir / FINAL_DIR).exists()):
        raise ConfigError(f"train.out_dir={out_dir} already holds a run's checkpoints; pass --resume to continue it, "
                          "or choose another train.out_dir")
    if dist.is_main:
        clean_interrupted_writes(out_dir, root)
    state = None
    if resume:
        check_resume_config(cfg, saved_config(out_dir))
        if has_checkpoints(root):
            _, state = resume_state(root)
            warn_thread_change(state)
        else:  # nothing to resume yet (first launch of a preemptible job): start fresh, when no data can be lost
            check_fresh_start(out_dir, root)
            if dist.is_main:
                print(f"note: --resume: {out_dir} holds no checkpoint yet; starting a fresh run", file=sys.stderr)
    tokenizer = tokenizer_from_config(cfg.data)
    tc = cfg.train
    batches, val_batches = build_batches(cfg.data, tokenizer, tc.batch_size, seed=tc.seed, rank=dist.rank,
                                         world_size=dist.world_size)
    torch.manual_seed(tc.seed)  # the same initialization on every rank (inside train()'s fork_rng)
    model = DiffusionLM.from_config(cfg, len(tokenizer), tokenizer=tokenizer)
    if tc.init_from and state is None:  # a resumed run restores its own weights
        init_from(model, tc.init_from)
    model = model.to(dist.device)
    parallel = Parallel(model, tc, dist)
    optimizer = build_optimizer(model, tc)
    trainer = Trainer(cfg, dist, model, parallel, optimizer, build_scheduler(optimizer, tc),
                      EMA(model, tc.ema) if tc.ema > 0 else None, batches, val_batches,
                      torch.Generator(dist.device), out_dir, padded=batches.padded)
    if state is not None:
        restore(trainer, state, root)
    if dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out_dir / CONFIG_FILE, header=f"intra_op_threads: {torch.get_num_threads()} (this start)")
    trainer.logger = MetricsLogger(out_dir, start_step=trainer.step, total_steps=tc.steps, is_main=dist.is_main,
                                   progress=tc.progress, tensorboard=tc.tensorboard, log_every=tc.log_every)
    return trainer


def run(tr: Trainer) -> dict[str, Any]:
    """The step loop from tr.step to cfg.train.steps; then the final export. Returns the summary dict."""
    cfg = tr.cfg.train
    finished = tr.step >= cfg.steps  # resumed a run that had already ended: train nothing, keep its final/
    meter = Throughput(cfg.batch_size * tr.cfg.data.seq_len)
    batches = iter(tr.train_batches)
    loss = val_nll = math.nan
    while tr.step < cfg.steps:
        start = time.perf_counter()
        lr = tr.optimizer.param_groups[0]["lr"]
        loss, grad_norm = train_step(tr, next(batches))
        tr.step += 1
        meter.add(time.perf_counter() - start)
        metrics: dict[str, float] = {}
        if tr.step % cfg.log_every == 0 or tr.step == cfg.steps:
            metrics.update(loss=loss, lr=lr, grad_norm=grad_norm, tokens_per_s=meter.window_rate(),
                           elapsed_s=tr.elapsed + time.perf_counter() - start, threads=torch.get_num_threads())
            if cfg.on_nonfinite == "skip":
                metrics["skipped_steps"] = tr.skipped
        if (cfg.eval_every and tr.step % cfg.eval_every == 0) or tr.step == cfg.steps:
            val_nll = evaluate(tr)
            metrics.update(val_nll=val_nll, val_ppl=_ppl(val_nll))
            tr.logger.message(f"step {tr.step}: {_validation_line(tr, val_nll)}")
        tr.logger.log(tr.step, **metrics)
        tr.logger.advance(loss=loss, tok_s=meter.last_rate())
        tr.elapsed += time.perf_counter() - start
        if (cfg.save_every and tr.step % cfg.save_every == 0) or tr.step == cfg.steps:
            save(tr)
    if math.isnan(val_nll):  # resumed a finished run: nothing trained, still report the bound
        val_nll = evaluate(tr)
    final_dir = export_final(tr, keep_existing=finished)
    summary = {"steps": tr.step, "train_loss": loss, "val_nll": val_nll, "val_ppl": _ppl(val_nll),
               "uniform_nll": math.log(tr.model.vocab_size), "tokens_per_s": meter.total_rate(),
               "elapsed_s": tr.elapsed, "num_parameters": tr.model.num_parameters(), "out_dir": str(tr.out_dir),
               "final_dir": str(final_dir), "skipped_steps": tr.skipped}
    tr.logger.close()  # the bar ends before the summary lines
    tr.logger.message(f"done: {tr.step} steps of a {summary['num_parameters']:,}-parameter model in "
                      f"{tr.elapsed:.1f} s of training; {_validation_line(tr, val_nll)}")
    tr.logger.message(f"final model: {final_dir} (dlm sample --checkpoint {final_dir})")
    return summary


def _ppl(nll: float) -> float:
    return math.inf if nll > 700 else math.exp(nll)  # math.exp overflows past ~709 (a diverged model); nan stays


def _validation_line(tr: Trainer, val_nll: float) -> str:
    """An exact likelihood (AR) gives the perplexity; a diffusion bound an upper bound on it."""
    relation = "=" if tr.model.objective.exact_likelihood else "<="
    return f"val_nll {val_nll:.4f} nats/token (ppl {relation} {_ppl(val_nll):.2f})"


def micro_batches(tr: Trainer, batch: dict[str, torch.Tensor]):
    """Split this rank's rows of a global batch into grad_accum micro-batches: micro-batch m takes every
    grad_accum-th row and is shard rank + world_size * m. Yields (m, shard, ids (b, L), mask (b, L) or None);
    the mask is None unless the data is padded (pad mode). The mask selects the scored tokens only: as in MDLM's
    reference, bidirectional models still attend to (noised) padding, in training and evaluation alike, so their
    bound is conditional on the row's length (docs/likelihood.md)."""
    accum, dist = tr.cfg.train.grad_accum, tr.dist
    ids, mask = batch["input_ids"].to(dist.device), batch["attention_mask"].to(dist.device)
    for m in range(min(accum, len(ids))):
        yield m, dist.rank + dist.world_size * m, ids[m::accum], mask[m::accum] if tr.padded else None


def train_step(tr: Trainer, batch: dict[str, torch.Tensor]) -> tuple[float, float]:
    """One optimizer step on this rank's rows of a global batch. Returns (global loss, grad norm before clipping)."""
    cfg, dist = tr.cfg.train, tr.dist
    sums = torch.zeros(2, dtype=torch.float64, device=dist.device)
    for m, shard, ids, mask in micro_batches(tr, batch):
        tr.generator.manual_seed(shard_seed(cfg.seed, tr.step, shard))
        torch.manual_seed(shard_seed(cfg.seed, tr.step, shard, "dropout"))
        out = tr.parallel.forward_backward(ids, mask, tr.generator, sync=m == cfg.grad_accum - 1, step=tr.step)
        sums += torch.stack([out.nll_sum.double(), out.num_tokens.double()])
    nll_sum, num_tokens = all_reduce_sum(sums, dist).tolist()
    grads = [p.grad for p in tr.model.parameters() if p.grad is not None]
    # ranks averaged sum_m grad(nll_sum_m) / ids.numel() (every micro-batch has ids.numel() positions)
    torch._foreach_mul_(grads, dist.world_size * ids.numel() / max(num_tokens, 1.0))
    grad_norm = clip_gradients(tr.model.parameters(), cfg.grad_clip)
    loss = nll_sum / max(num_tokens, 1.0)
    finite = math.isfinite(loss) and math.isfinite(grad_norm)  # the same on every rank (both are all-reduced)
    if finite:
        tr.optimizer.step()
    tr.scheduler.step()  # a skipped update still uses up its step of the schedule (and its batch)
    tr.optimizer.zero_grad(set_to_none=True)
    if not finite:
        diverged(tr, loss, grad_norm)
    elif tr.ema is not None:
        tr.ema.update()
    return loss, grad_norm


def diverged(tr: Trainer, loss: float, grad_norm: float) -> None:
    """A non-finite step (its update was dropped): stop with a one-line error, or count it and go on (skip)."""
    step = tr.step + 1
    if tr.cfg.train.on_nonfinite == "skip":
        tr.skipped += 1
        tr.logger.message(f"step {step}: loss {loss}, grad norm {grad_norm}: update skipped "
                          f"({tr.skipped} so far)")
        return
    newest = newest_checkpoint(checkpoint_root(tr.out_dir))
    resume = f"the newest checkpoint is {newest.name} (--resume continues from it)" if newest else "no checkpoint"
    raise TrainingDiverged(f"training diverged at step {step}: loss {loss}, grad norm {grad_norm}; nothing non-finite "
                           f"was saved and {resume}; lower train.lr (now {tr.cfg.train.lr:g}) or raise "
                           "train.warmup_steps, or set train.on_nonfinite=skip to drop such updates")


@torch.no_grad()
def evaluate(tr: Trainer) -> float:
    """Per-token validation bound (nats) over cfg.train.eval_batches global batches, EMA weights if on.

    The generators are keyed by (seed, batch, shard) and not by the training step, so values are comparable
    across steps, and (like training) independent of how shards are spread over ranks and micro-batches.
    """
    cfg, dist = tr.cfg.train, tr.dist
    sums = torch.zeros(2, dtype=torch.float64, device=dist.device)
    search = tr.model.objective.validation_search()  # e.g. block diffusion's clipped window; None for most
    tr.model.eval()
    with tr.ema.swapped_in() if tr.ema is not None else nullcontext():
        for index, batch in zip(range(cfg.eval_batches), tr.val_batches):
            real = batch["attention_mask"].any(1)  # drop the all-padding rows that top up the last batch
            for _, shard, ids, mask in micro_batches(tr, {key: value[real] for key, value in batch.items()}):
                tr.generator.manual_seed(shard_seed(cfg.seed, index, shard, "validation"))
                with tr.parallel.autocast():
                    out = tr.model.loss(ids, attention_mask=mask, generator=tr.generator)
                    if search is not None:
                        search.add(tr.model.logits, ids, tr.generator)
                sums += torch.stack([out.nll_sum.double(), out.num_tokens.double()])
    if search is not None:  # the estimates of every rank pooled per batch: each rank picks the same window
        tr.logger.message(search.finish(reduce=lambda values: all_reduce_sum(values.to(dist.device), dist)))
    tr.model.train()
    nll_sum, num_tokens = all_reduce_sum(sums, dist).tolist()
    return nll_sum / max(num_tokens, 1.0)


def export_final(tr: Trainer, *, keep_existing: bool = False) -> Path:
    """Copy the deployable model of the last checkpoint (the final step's) to out_dir/final, atomically, after
    checking that it loads and is finite. keep_existing: a finished run's intact final/ is never rewritten."""
    final_dir = tr.out_dir / FINAL_DIR
    if tr.dist.is_main and not (keep_existing and model_dir_readable(final_dir)):
        source = latest_checkpoint(checkpoint_root(tr.out_dir)) / MODEL_DIR
        check_model_dir(source)
        write_dir_atomically(final_dir, lambda tmp: shutil.copytree(source, tmp, dirs_exist_ok=True))
    barrier(tr.dist)
    return final_dir


def write_model(tr: Trainer, weights: dict[str, torch.Tensor], path: Path) -> None:
    """save_pretrained of an unsharded CPU copy built on the meta device (no RNG use, no extra init)."""
    with torch.device("meta"):
        model = DiffusionLM.from_config(tr.cfg, tr.model.vocab_size, tokenizer=tr.model.tokenizer)
    model.load_state_dict(weights, assign=True)
    model.objective.load_state_dict(tr.model.objective.state_dict())  # e.g. a searched clip window: in config.json
    model.save_pretrained(str(path))


def save(tr: Trainer) -> None:
    """Checkpoint out_dir/checkpoints/step_XXXXXX (collective; rank 0 writes)."""
    raw = get_model_state_dict(tr.model, options=_FULL)
    ema = tr.ema.state_dict() if tr.ema is not None else None
    state = {"step": tr.step, "elapsed": tr.elapsed, "model": raw,
             "ema": ema, "optimizer": get_optimizer_state_dict(tr.model, tr.optimizer, options=_FULL),
             "scheduler": tr.scheduler.state_dict(), "data": tr.train_batches.state_dict(),
             "skipped": tr.skipped, "threads": torch.get_num_threads(), "objective": tr.model.objective.state_dict()}
    weights = raw if ema is None else {**raw, **ema["shadow"]}  # the deployable model: EMA weights when on
    bad = next((name for name, w in {**raw, **weights}.items() if not bool(torch.isfinite(w).all())), None)
    if bad is not None:  # finite losses with non-finite weights: refuse to overwrite a good checkpoint with it
        raise TrainingDiverged(f"training diverged by step {tr.step}: weight {bad} is not finite, so no checkpoint "
                               "was written; lower train.lr and resume from the newest checkpoint")
    if tr.dist.is_main:
        save_checkpoint(checkpoint_root(tr.out_dir), tr.step, state, lambda path: write_model(tr, weights, path))
    barrier(tr.dist)


def restore(tr: Trainer, state: dict[str, Any], root: Path) -> None:
    """Load a trainer state into a freshly built trainer (every rank reads the same full state)."""
    options = StateDictOptions(full_state_dict=True)
    try:
        set_model_state_dict(tr.model, state["model"], options=options)
        set_optimizer_state_dict(tr.model, tr.optimizer, state["optimizer"], options=options)
    except (RuntimeError, KeyError, ValueError) as err:
        raise ConfigError(f"checkpoint in {root} does not match the configured model and optimizer "
                          f"({str(err).strip().splitlines()[0]}); resume with the run's own config") from None
    tr.scheduler.load_state_dict(state["scheduler"])
    # the configured lr wins over the saved one (it may be lowered on resume, e.g. after a divergence)
    tr.scheduler.base_lrs = [tr.cfg.train.lr for _ in tr.optimizer.param_groups]
    for group in tr.optimizer.param_groups:
        group["lr"] = tr.cfg.train.lr * lr_multiplier(tr.scheduler.last_epoch, tr.cfg.train)
    tr.train_batches.load_state_dict(state["data"])
    if tr.ema is not None:  # a run that turns EMA on at resume starts averaging from the current weights
        if state.get("ema") is not None:
            tr.ema.load_state_dict(state["ema"])
        else:
            tr.ema = EMA(tr.model, tr.cfg.train.ema)
    tr.step, tr.elapsed = int(state["step"]), float(state["elapsed"])
    tr.skipped = int(state.get("skipped", 0))
    tr.model.objective.load_state_dict(state.get("objective", {}))


def warn_thread_change(state: dict[str, Any]) -> None:
    """Intra-op thread counts change float reduction order, hence the loss curve: say so when they differ."""
    saved, now = state.get("threads"), torch.get_num_threads()
    if saved is not None and int(saved) != now:
        warnings.warn(f"this run was checkpointed with {saved} intra-op threads and resumes with {now}: the loss "
                      f"curve will not be bit-identical to an uninterrupted run (torch.set_num_threads({saved}) or "
                      f"OMP_NUM_THREADS={saved} restores it)", stacklevel=2)
