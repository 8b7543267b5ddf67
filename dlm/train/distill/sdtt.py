"""SDTT's target: the teacher's two ancestral steps per student step, as the law the student's one step should have
(Deschenaux & Gulcehre, self-distillation through time, arXiv 2410.21035; docs/distillation.md#sdtt).

A masked model's one reverse step t -> s leaves a masked position masked w.p. (1 - alpha_s) / (1 - alpha_t) and
otherwise draws it from x_theta(. | x_t). Two teacher steps t -> u -> s (u the midpoint) reach the same mask mass,
(1 - p1)(1 - p2) with p1 = (alpha_u - alpha_t) / (1 - alpha_t) and p2 = (alpha_s - alpha_u) / (1 - alpha_u), but
their clean part is the teacher's two-step marginal law
    L^l = [ p1 x_T(. | x_t)^l + (1 - p1) p2 E[ x_T(. | x_u)^l | x_u^l = m ] ] / p,     p = 1 - (1 - p1)(1 - p2),
which is what the student's x_S(. | x_t)^l should equal: the best one-step factorized sampler, since a one-step
sampler draws positions independently. From one teacher draw x_u ~ p_T(x_u | x_t), the mixture
    T^l = [ p1 x_T(. | x_t)^l + (1 - p1) p2 x_T(. | x_u)^l ] / p     at the positions with x_u^l = m
is an unbiased estimate of L^l (the step t -> u moves positions independently, so x_u given x_u^l = m is a draw
of the other positions): target "law". The reference (jdeschena/sdtt) instead targets one sampled trajectory,
x_T(. | x_t)^l where the first step unmasked l and x_T(. | x_u)^l at every other position masked at t: target
"sampled" (the default), weights p1 and 1 - p1 rather than p1 / p and (1 - p1) p2 / p (both tend to the same law
as the steps shrink). Under kl_bwd the student's optimum is the normalized geometric mean exp E[log target] over
the teacher's draws, so the sampled target, which varies more from draw to draw, sharpens the student more.
Two teacher calls per student step, as in the reference.

Student times ("grid", ours): t and s are consecutive times of the student's own k-step grid, where it will be
used. "uniform" (the reference's): t stratified on the grid's span and s = t - 1/k of that span, clipped at its end.

Block diffusion (BD3LM) is the same target per block, given the clean prefix: every block k has its own time t_k on
the student's grid, x_T(. | x_t) becomes x_T(. | x_t^k, x^{<k}) and the teacher's step t -> u moves block k at its
own t_k -> u_k; one two-stream forward gives every block's law at once (readers.py: what differs between the two
families is what 'time' is and how the model is called on x_t). A block student samples with k steps per block.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dlm.denoiser import Denoiser
from dlm.process.absorbing import Absorbing
from dlm.train.distill.divergences import divergence
from dlm.train.distill.readers import Reader, stratified_grid_steps
from dlm.utils.categorical import inverse_cdf
from dlm.utils.shapes import per_sequence


def unmask_probability(process: Absorbing, t: Tensor, s: Tensor) -> Tensor:
    """P(a position masked at t is clean at s) of one reverse step: (alpha_s - alpha_t) / (1 - alpha_t); times and
    result (B,), or (B, L) per token (block diffusion)."""
    alpha_t, alpha_s = process.schedule.alpha(t.double()), process.schedule.alpha(s.double())
    return (alpha_s - alpha_t) / (1 - alpha_t)


def teacher_x0(teacher: Denoiser, reader: Reader, xt: Tensor, t: Tensor, x0: Tensor | None = None) -> Tensor:
    """x_T(x0 | x_t): the teacher's clean-token law (B, L, N) float64 (carry-over at clean positions); a block
    model's is x_T(. | x_t^k, x0^{<k}) in each block k (x0: the clean rows (B, L); unused by a masked model)."""
    return reader.process.x0_probs(reader.predict(teacher, xt, t, x0), xt, t.double())


def teacher_step(process: Absorbing, x0_probs: Tensor, xt: Tensor, t: Tensor, u: Tensor,
                 generator: torch.Generator | None) -> Tensor:
    """One ancestral step t -> u of the teacher: each masked position unmasks w.p. p1 to a draw of x0_probs.
    x0_probs (B, L, N), xt (B, L), t and u (B,) or per token (B, L) -> x_u (B, L)."""
    p1 = per_sequence(unmask_probability(process, t, u), 2)
    coin = torch.rand(xt.shape, generator=generator, dtype=torch.float64, device=xt.device)
    unmask = (xt == process.mask_id) & (coin < p1)
    out = xt.clone()
    if bool(unmask.any()):
        uniforms = torch.rand(int(unmask.sum()), generator=generator, dtype=torch.float64, device=xt.device)
        out[unmask] = inverse_cdf(x0_probs[unmask], uniforms)
    return out


def two_step_target(process: Absorbing, first: Tensor, second: Tensor, xu: Tensor, t: Tensor, u: Tensor,
                    s: Tensor) -> tuple[Tensor, Tensor]:
    """The estimate T of the teacher's two-step clean law (module docstring) from first = x_T(. | x_t), second =
    x_T(. | x_u), both (B, L, N) float64, the teacher's draw x_u (B, L) and times (B,) or per token (B, L).
    -> (T (B, L, N) float64, scored (B, L) bool: the positions still masked at u, where T is defined)."""
    p1, p2 = unmask_probability(process, t, u), unmask_probability(process, u, s)
    p = 1 - (1 - p1) * (1 - p2)
    w_first, w_second = (per_sequence(w, 3) for w in (p1 / p, (1 - p1) * p2 / p))
    return w_first * first + w_second * second, xu == process.mask_id


def sampled_target(first: Tensor, second: Tensor, xt: Tensor, xu: Tensor, mask_id: int) -> tuple[Tensor, Tensor]:
    """The reference's target (module docstring): first = x_T(. | x_t) where the teacher's step t -> u unmasked the
    position, second = x_T(. | x_u) at the positions still masked at u; both (B, L, N), x_t and x_u (B, L).
    -> (target (B, L, N), scored (B, L) bool: every position masked at t)."""
    unmasked_first = (xt == mask_id) & (xu != mask_id)
    return torch.where(unmasked_first.unsqueeze(-1), first, second), xt == mask_id


TARGETS = ("law", "sampled")
TIME_SAMPLINGS = ("grid", "uniform")


def student_step_times(times: Tensor, pairs: int, sampling: str, generator: torch.Generator | None,
                       device: torch.device) -> tuple[Tensor, Tensor]:
    """The student steps t -> s (pairs,) float64 on the student's k-step grid `times` (k + 1,) (decreasing):
    "grid" draws grid indices stratified over the k steps; "uniform" draws t stratified on [times[-1], times[0]]
    (one offset) and s = max(t - (times[0] - times[-1]) / k, times[-1])."""
    times = times.to(device, torch.float64)
    steps = len(times) - 1
    if sampling == "grid":
        index = stratified_grid_steps(steps, pairs, generator, device)
        return times[index], times[index + 1]
    low, high = times[-1], times[0]
    offset = torch.rand(1, generator=generator, dtype=torch.float64, device=device)
    fraction = (offset + torch.arange(pairs, dtype=torch.float64, device=device) / pairs) % 1.0
    t = high - fraction * (high - low)
    return t, (t - (high - low) / steps).clamp_min(low)


def sdtt_loss(student: Denoiser, teacher: Denoiser, reader: Reader, x0: Tensor, times: Tensor, *,
              divergence_name: str = "kl_bwd", target_name: str = "sampled", time_sampling: str = "grid",
              generator: torch.Generator | None = None) -> tuple[Tensor, int]:
    """One Monte Carlo estimate of the SDTT loss on clean rows x0 (B, L) for a student that samples on the grid
    `times` (k + 1,) (decreasing, TimeGrid.times; per block for a block model): each (row, block) pair takes a
    student step t -> s (student_step_times; one block per row for a masked model), x_t ~ q_t(. | x0), and the
    student's step is matched to the teacher's two steps t -> (t + s)/2 -> s at the positions the target
    ("law" or "sampled", module docstring) scores. reader (readers.py): the model family's time and call.
    -> (mean divergence (scalar), scored count)."""
    (batch, length), process = x0.shape, reader.process
    blocks = reader.blocks(length)
    t, s = student_step_times(times, batch * blocks, time_sampling, generator, x0.device)
    t, s = reader.per_token(t.view(batch, blocks)), reader.per_token(s.view(batch, blocks))  # (B,) or (B, L)
    u = (t + s) / 2
    xt = process.corrupt(x0, t, generator=generator)
    with torch.no_grad():
        first = teacher_x0(teacher, reader, xt, t, x0)
        xu = teacher_step(process, first, xt, t, u, generator)
        second = teacher_x0(teacher, reader, xu, u, x0)  # the x_t half moves to x_u; the clean half stays x0
        if target_name == "sampled":
            target, scored = sampled_target(first, second, xt, xu, process.mask_id)
        else:
            target, scored = two_step_target(process, first, second, xu, t, u, s)
    log_probs = reader.predict(student, xt, t, x0).log_probs  # (B, L, N): the student's log x_S(. | x_t)
    clean = process.clean_mask(xt)
    per_position = divergence(divergence_name, log_probs[scored][:, clean], target[scored][:, clean])
    count = int(scored.sum())
    return (per_position.sum() / max(count, 1)), count
