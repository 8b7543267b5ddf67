"""The diffu-GRPO loop (d1, arXiv 2504.12216 Algorithm 1; docs/posttraining.md#the-loop).

Every mu optimizer steps a new batch of generations: `prompts` fresh puzzles of the task (never a question of its
shipped evaluation files), group_size completions each (rollouts.py), rewards and advantages (rewards.py), and for
each inner iteration j < mu a mask seed s_j with which log pi_old and log pi_ref are computed right away; inner
step j then reads log pi_theta with the same seed s_j (loss.py). The reference model is the starting checkpoint,
frozen. All randomness is keyed by (seed, generation, purpose), and checkpoints are written at generation
boundaries only, so a resumed run continues the same curve. The model stays in eval mode (no dropout), so with
mu = 1 the ratio is exactly 1.

Metrics per step (out_dir/metrics.jsonl): loss, reward (mean), accuracy (fraction the checker accepts), kl, clip
fraction, reward_std (within groups), elapsed_s.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from dlm.diffusion_lm import DiffusionLM
from dlm.registry import ConfigError
from dlm.tasks import Task, get_task
from dlm.train.checkpoint import (
    FINAL_DIR,
    checkpoint_root,
    save_checkpoint,
)
from dlm.train.log import MetricsLogger
from dlm.train.optim import clip_gradients
from dlm.train.parallel import shard_seed
from dlm.train.resume import state_to_resume
from dlm.train.rl.loss import grpo_loss
from dlm.train.rl.rewards import check_reward, group_advantages, task_rewards
from dlm.train.rl.rollouts import sample_rollouts


@dataclass(frozen=True)
class GRPOConfig:
    """d1's defaults where they carry over (docs/posttraining.md#hyper-parameters); lr is for small models."""

    steps: int = 64
    prompts: int = 4  # prompts per batch of generations
    group_size: int = 6  # G
    mu: int = 2  # inner updates per batch of generations
    beta: float = 0.04  # KL weight
    clip_eps: float = 0.5
    prompt_mask_prob: float = 0.15  # p of the one-step estimator (masked models)
    lr: float = 1e-5
    weight_decay: float = 0.0
    grad_clip: float = 0.2
    temperature: float = 0.9
    sampler: str = ""  # "": the family's default sampler
    sampler_steps: int = 0  # 0: one per answer token
    reward: str = "checker"  # checker | partial (the task's partial credit, rewards.py)
    format_weight: float = 0.0
    seed: int = 0
    save_every: int = 0  # steps; a multiple of mu (0: only at the end)
    log_every: int = 1

    def check(self) -> None:
        for key in ("steps", "prompts", "group_size", "mu", "log_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"rl {key}={getattr(self, key)} must be at least 1")
        if self.steps % self.mu or self.save_every % self.mu:
            raise ConfigError(f"rl steps={self.steps} and save_every={self.save_every} must be multiples of "
                              f"mu={self.mu}: checkpoints fall between batches of generations")
        check_reward(self.reward)
        if not 0 <= self.prompt_mask_prob < 1 or self.clip_eps <= 0 or self.beta < 0 or self.temperature <= 0:
            raise ConfigError("rl needs 0 <= prompt_mask_prob < 1, clip_eps > 0, beta >= 0 and temperature > 0")


def token_log_probs(model: DiffusionLM, ids: torch.Tensor, completion: torch.Tensor, p: float, seed: int):
    """(n, L) log pi(o_k) from the model's objective, with the mask draw of `seed`."""
    generator = torch.Generator(ids.device).manual_seed(seed)
    return model.objective.token_log_probs(model.logits, ids, completion, prompt_mask_prob=p, generator=generator)


class Generation:
    """One batch of generations and what its mu inner steps read: rollouts, rewards, advantages, the mask seeds,
    log pi_old and log pi_ref per seed."""

    def __init__(self, model: DiffusionLM, ref: DiffusionLM, task, cfg: GRPOConfig, index: int, exclude: set[str]):
        key = cfg.seed * 1_000_003 + index
        questions = task.generate(cfg.prompts, seed=key, exclude=exclude)  # (question, reference answer)
        generator = torch.Generator(next(model.parameters()).device).manual_seed(shard_seed(cfg.seed, index, 0))
        self.rollouts = sample_rollouts(model, task, [q for q, _ in questions], group_size=cfg.group_size,
                                        sampler=cfg.sampler or None, steps=cfg.sampler_steps,
                                        temperature=cfg.temperature, generator=generator)
        references = [a for _, a in questions for _ in range(cfg.group_size)]
        self.rewards, self.correct = task_rewards(task, self.rollouts.questions, self.rollouts.answers,
                                                  references=references, reward=cfg.reward,
                                                  format_weight=cfg.format_weight)
        self.advantages = group_advantages(self.rewards, cfg.group_size).to(self.rollouts.ids.device)
        self.seeds = [shard_seed(cfg.seed, index, j, "mask") for j in range(cfg.mu)]
        r = self.rollouts
        with torch.no_grad():
            self.old = [token_log_probs(model, r.ids, r.completion, cfg.prompt_mask_prob, s) for s in self.seeds]
            self.ref = [token_log_probs(ref, r.ids, r.completion, cfg.prompt_mask_prob, s) if cfg.beta else None
                        for s in self.seeds]


def inner_step(model: DiffusionLM, optimizer: torch.optim.Optimizer, gen: Generation, j: int,
               cfg: GRPOConfig) -> dict[str, float]:
    """Inner update j of a generation: the GRPO loss with mask seed j, backward, clip, step."""
    r = gen.rollouts
    log_probs = token_log_probs(model, r.ids, r.completion, cfg.prompt_mask_prob, gen.seeds[j])
    out = grpo_loss(log_probs, gen.old[j], gen.ref[j], gen.advantages, r.completion, clip_eps=cfg.clip_eps,
                    beta=cfg.beta)
    out.loss.backward()
    grad_norm = clip_gradients(model.parameters(), cfg.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    groups = gen.rewards.view(-1, cfg.group_size)
    return {"loss": float(out.loss.detach()), "reward": float(gen.rewards.mean()),
            "accuracy": float(gen.correct.float().mean()), "kl": out.kl, "clip_fraction": out.clip_fraction,
            "reward_std": float(groups.std(dim=1, unbiased=False).mean()), "grad_norm": grad_norm}


def rl_train(task_name: str | Task, checkpoint: str | Path, out_dir: str | Path, cfg: GRPOConfig, *,
             resume: bool = False) -> dict[str, Any]:
    """Post-train the model at `checkpoint` on a task with diffu-GRPO (GRPO for the autoregressive baseline);
    writes out_dir/checkpoints/step_*, out_dir/metrics.jsonl and out_dir/final. Returns a summary dict.
    task_name: a registered task's name, or a Task."""
    cfg.check()
    task = get_task(task_name) if isinstance(task_name, str) else task_name
    out_dir = Path(out_dir)
    root = checkpoint_root(out_dir)
    if not Path(checkpoint).is_dir():
        raise ConfigError(f"checkpoint directory not found: {checkpoint}; pass an SFT run's final/ directory")
    state = state_to_resume(out_dir, resume=resume, run="an RL run", flag="--out-dir")
    with torch.random.fork_rng():
        model = DiffusionLM.from_pretrained(str(checkpoint)).eval()
        if model.tokenizer is None:
            raise ConfigError(f"checkpoint {checkpoint} has no tokenizer; train it with `dlm task train`")
        ref = copy.deepcopy(model).requires_grad_(False)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
        step, elapsed = 0, 0.0
        if state is not None:
            if state["data"].get("rl") != asdict(cfg) | {"steps": state["data"]["rl"]["steps"]}:
                raise ConfigError(f"--resume of {out_dir} with other RL settings than the run's own; only steps may "
                                  "change")
            model.load_state_dict(state["model"])
            ref.load_state_dict(state["data"]["reference"])
            optimizer.load_state_dict(state["optimizer"])
            step, elapsed = int(state["step"]), float(state["elapsed"])
        out_dir.mkdir(parents=True, exist_ok=True)
        logger = MetricsLogger(out_dir, start_step=step, total_steps=cfg.steps, is_main=True, progress=False,
                               tensorboard=False, log_every=cfg.log_every)
        exclude, gen, metrics = task.shipped_questions(), None, {}
        try:
            while step < cfg.steps:
                start = time.perf_counter()
                torch.manual_seed(shard_seed(cfg.seed, step, 0, "dropout"))
                if step % cfg.mu == 0:
                    gen = Generation(model, ref, task, cfg, step // cfg.mu, exclude)
                metrics = inner_step(model, optimizer, gen, step % cfg.mu, cfg)
                step += 1
                elapsed += time.perf_counter() - start
                if step % cfg.log_every == 0 or step == cfg.steps:
                    logger.log(step, **metrics, elapsed_s=elapsed)
                if (cfg.save_every and step % cfg.save_every == 0) or step == cfg.steps:
                    state = {"step": step, "elapsed": elapsed, "model": model.state_dict(),
                             "optimizer": optimizer.state_dict(), "scheduler": {},
                             "data": {"rl": asdict(cfg), "reference": ref.state_dict()}}
                    save_checkpoint(root, step, state, lambda path: model.save_pretrained(str(path)))
        finally:
            logger.close()
        final = out_dir / FINAL_DIR
        model.save_pretrained(str(final))
    return {"task": task.name, "steps": step, "elapsed_s": elapsed, "out_dir": str(out_dir),
            "final_dir": str(final), **{k: v for k, v in metrics.items() if not math.isnan(v)}}

