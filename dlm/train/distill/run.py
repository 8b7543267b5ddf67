"""The distillation loop (docs/distillation.md#the-loop): the student starts from the teacher's weights; every
optimizer step draws a batch of the teacher's own training data and the method's loss (sdtt.py or dcd.py); at the
end of each round (rounds.py) the student is exported to out_dir/students/steps_<k> (an ordinary dlm checkpoint:
every sampler, cache and evaluation reads it) and becomes the teacher. All randomness is keyed by (seed, step), and
checkpoints hold the student, the teacher, the optimizer and the data position, so a resumed run continues the same
loss curve. Metrics per logged step (out_dir/metrics.jsonl): loss, round, student_steps, scored, grad_norm,
elapsed_s.
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from dlm.data import build_batches
from dlm.diffusion_lm import DiffusionLM
from dlm.process.base import Capability
from dlm.registry import ConfigError
from dlm.sample.ancestral import Ancestral
from dlm.train.checkpoint import (
    FINAL_DIR,
    checkpoint_root,
    save_checkpoint,
    write_dir_atomically,
)
from dlm.train.distill.dcd import dcd_loss
from dlm.train.distill.divergences import check_divergence
from dlm.train.distill.readers import reader_of
from dlm.train.distill.rounds import Rounds
from dlm.train.distill.sdtt import TARGETS, TIME_SAMPLINGS, sdtt_loss
from dlm.train.ema import EMA
from dlm.train.log import MetricsLogger
from dlm.train.optim import clip_gradients
from dlm.train.parallel import shard_seed
from dlm.train.resume import state_to_resume

STUDENTS_DIR = "students"
# method -> (the process capability it needs, the objectives whose output it reads as x_theta)
METHODS = {"sdtt": (Capability.ABSORBING, ("masked_elbo", "radd", "block_diffusion")),
           "dcd": (Capability.UNIFORM_PRIOR, ("uniform_elbo",))}


@dataclass(frozen=True)
class DistillConfig:
    """SDTT's reference trains 10k steps per round at batch 128, lr 3e-4 (docs/distillation.md#hyper-parameters);
    the defaults here are for small models on a CPU."""

    method: str = "sdtt"
    teacher_steps: int = 64
    rounds: int = 3
    steps_per_round: int = 200
    batch_size: int = 32
    lr: float = 1e-4
    grad_clip: float = 1.0
    divergence: str = "kl_bwd"
    target: str = "sampled"  # sdtt: "sampled" (the reference's) or "law" (the teacher's two-step law; sdtt.py)
    time_sampling: str = "grid"  # sdtt: student steps on its own grid, or "uniform" t as in the reference
    ema: float = 0.0  # EMA decay of the exported students (0: off); the teacher takes the raw weights
    seed: int = 0
    save_every: int = 0  # optimizer steps (0: at round ends only)
    log_every: int = 10

    @property
    def schedule(self) -> Rounds:
        return Rounds(self.teacher_steps, self.rounds, self.steps_per_round)

    def check(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"distill method '{self.method}' is not one of: {', '.join(METHODS)}")
        self.schedule.check()
        check_divergence(self.divergence)
        for key, allowed in (("target", TARGETS), ("time_sampling", TIME_SAMPLINGS)):
            if getattr(self, key) not in allowed:
                raise ConfigError(f"distill {key}='{getattr(self, key)}' is not one of: {', '.join(allowed)}")
        if not (self.ema == 0 or 0 < self.ema < 1):
            raise ConfigError(f"distill ema={self.ema} must be 0 (off) or in (0, 1)")
        for key in ("batch_size", "log_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"distill {key}={getattr(self, key)} must be at least 1")
        if self.lr <= 0 or self.grad_clip < 0 or self.save_every < 0:
            raise ConfigError("distill needs lr > 0, grad_clip >= 0 and save_every >= 0")


def check_teacher(model: DiffusionLM, method: str, path: str | Path) -> None:
    """One-line ConfigError unless the method can distil this teacher."""
    capability, objectives = METHODS[method]
    name = model.objective.cfg.name
    capabilities = model.process.capabilities if model.process is not None else frozenset()
    if capability not in capabilities:
        kind = "masked (absorbing)" if capability is Capability.ABSORBING else "uniform-state"
        raise ConfigError(f"--method {method} distils a {kind} model; {path} is a '{name}' model on "
                          f"{type(model.process).__name__ if model.process else 'no process'}")
    if name not in objectives:
        raise ConfigError(f"--method {method} reads x_theta of a {' or '.join(objectives)} model; {path} is "
                          f"'{name}' (score models are not supported)")
    if model.config is None or model.tokenizer is None:
        raise ConfigError(f"teacher {path} has no training config or tokenizer to draw its data from")


def method_loss(cfg: DistillConfig, student: DiffusionLM, teacher: DiffusionLM, x0: torch.Tensor, round_index: int,
                generator: torch.Generator) -> tuple[torch.Tensor, int]:
    """The method's loss on one batch in round round_index -> (loss, scored positions)."""
    if cfg.method == "sdtt":
        times = Ancestral().grid(cfg.schedule.student_steps(round_index)).times
        return sdtt_loss(student, teacher, reader_of(student), x0, times, divergence_name=cfg.divergence,
                         target_name=cfg.target, time_sampling=cfg.time_sampling, generator=generator)
    dt = 2 ** round_index / cfg.teacher_steps
    return dcd_loss(student, teacher, student.process, x0, dt, divergence_name=cfg.divergence, generator=generator)


def write_student(student: DiffusionLM, ema: EMA | None, path: Path) -> None:
    """save_pretrained of the weights a user gets: the EMA's when on (swapped in only while writing)."""
    with ema.swapped_in() if ema is not None else nullcontext():
        student.save_pretrained(str(path))


def export_student(student: DiffusionLM, ema: EMA | None, path: Path) -> None:
    write_dir_atomically(path, lambda tmp: write_student(student, ema, tmp))


def distill(teacher_path: str | Path, out_dir: str | Path, cfg: DistillConfig, *,
            resume: bool = False) -> dict[str, Any]:
    """Distil the model at teacher_path for cfg.rounds rounds; writes out_dir/students/steps_<k> after each round,
    out_dir/final (the last student), out_dir/checkpoints/step_* and out_dir/metrics.jsonl. Returns a summary."""
    cfg.check()
    out_dir = Path(out_dir)
    root = checkpoint_root(out_dir)
    if not Path(teacher_path).is_dir():
        raise ConfigError(f"teacher checkpoint directory not found: {teacher_path}")
    state = state_to_resume(out_dir, resume=resume, run="a distillation run", flag="--out-dir")
    schedule = cfg.schedule
    with torch.random.fork_rng():
        student = DiffusionLM.from_pretrained(str(teacher_path))
        check_teacher(student, cfg.method, teacher_path)
        teacher = copy.deepcopy(student).eval().requires_grad_(False)
        student.train()
        optimizer = torch.optim.AdamW(student.parameters(), lr=cfg.lr, betas=(0.9, 0.999), weight_decay=0.0)
        ema = EMA(student, cfg.ema) if cfg.ema > 0 else None
        batches, _ = build_batches(student.config.data, student.tokenizer, cfg.batch_size, seed=cfg.seed)
        step, elapsed = 0, 0.0
        if state is not None:
            if state["data"].get("distill") != asdict(cfg):
                raise ConfigError(f"--resume of {out_dir} with other distillation settings than the run's own")
            student.load_state_dict(state["model"])
            teacher.load_state_dict(state["data"]["teacher"])
            optimizer.load_state_dict(state["optimizer"])
            batches.load_state_dict(state["data"]["batches"])
            if ema is not None:
                ema.load_state_dict(state["ema"])
            step, elapsed = int(state["step"]), float(state["elapsed"])
        out_dir.mkdir(parents=True, exist_ok=True)
        logger = MetricsLogger(out_dir, start_step=step, total_steps=schedule.total_steps, is_main=True,
                               progress=False, tensorboard=False, log_every=cfg.log_every)
        device = next(student.parameters()).device
        generator = torch.Generator(device)
        data = iter(batches)
        loss = math.nan
        try:
            while step < schedule.total_steps:
                start = time.perf_counter()
                round_index = schedule.round_of(step)
                generator.manual_seed(shard_seed(cfg.seed, step, 0, "distill"))
                torch.manual_seed(shard_seed(cfg.seed, step, 0, "dropout"))
                x0 = next(data)["input_ids"].to(device)
                out, scored = method_loss(cfg, student, teacher, x0, round_index, generator)
                out.backward()
                grad_norm = clip_gradients(student.parameters(), cfg.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if ema is not None:
                    ema.update()
                step += 1
                loss = float(out.detach())
                elapsed += time.perf_counter() - start
                if step % cfg.log_every == 0 or schedule.ends_round(step):
                    logger.log(step, loss=loss, round=round_index, student_steps=schedule.student_steps(round_index),
                               scored=scored, grad_norm=grad_norm, elapsed_s=elapsed)
                if schedule.ends_round(step):
                    export_student(student, ema,
                                   out_dir / STUDENTS_DIR / f"steps_{schedule.student_steps(round_index)}")
                    teacher.load_state_dict(student.state_dict())  # raw weights, as the reference (no EMA on growth)
                if (cfg.save_every and step % cfg.save_every == 0) or schedule.ends_round(step):
                    state = {"step": step, "elapsed": elapsed, "model": student.state_dict(),
                             "optimizer": optimizer.state_dict(), "scheduler": {},
                             "ema": ema.state_dict() if ema is not None else None,
                             "data": {"distill": asdict(cfg), "teacher": teacher.state_dict(),
                                      "batches": batches.state_dict()}}
                    save_checkpoint(root, step, state, lambda path: write_student(student, ema, path))
        finally:
            logger.close()
        final = out_dir / FINAL_DIR
        export_student(student, ema, final)
    students = {k: str(out_dir / STUDENTS_DIR / f"steps_{k}") for k in
                (schedule.student_steps(r) for r in range(cfg.rounds))}
    return {"method": cfg.method, "steps": step, "elapsed_s": elapsed, "loss": loss, "out_dir": str(out_dir),
            "final_dir": str(final), "students": students}
