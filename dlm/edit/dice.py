"""DICE: exact discrete inversion and controllable editing (He et al., arXiv 2410.08207; docs/dice.md).

Inversion (`invert`). K steps, strength tau, fixed noise tokens eta (process.prior drawn once: the mask id for
absorbing, uniform ids for uniform noise), nested masks M_k and states x_k (trace.py). With l(x, t) the denoiser's
clean-token log-probabilities (SEDD score models through their x0 probabilities), floored at LOG_FLOOR = -30 so
SUBS' -inf entries stay finite (a forced point mass becomes a 30-nat gap, about the clean-logit gap of an MLM that
copies its input; entries below e^-30 lose nothing a sampler would draw), the target is
    "model":          l* = l(x0, 0)               (the release: exact iff argmax l(x0, 0) = x0, the copy condition;
                                                  it fails for models that do not copy their input)
    "onehot_margin":  l* = l(x0, 0) + m onehot(x0) (ours: exact for any model), with the smallest lift per position
                      m = max(0, max_{v != x0} l(x0, 0)_v - l(x0, 0)_{x0} + 1) that makes x0 win by one nat; zero
                      where the model already copies. A fixed lift M = 1e3 is; that is exact too, but
                      then any lambda1 > ~0.01 pulls every token back to x0 and lambda1 loses its meaning.
and the residuals z_k = l* - l(x_k, t_k) / T are recorded for k = 0..K-1, with t_k the model time whose noise level
1 - alpha(t_k) is the mask ratio r_k.

Editing (`edit`), from x~ = x_{K-1}, for k = K-1 .. 0 (predict-everything, as the release):
    x~ <- argmax_v [ l'(x~, t_k) / T + rule(lambda1_k z_k, lambda2_k g_k) ]      g_k ~ Gumbel, float64, fresh
over the clean categories, positions outside `editable` restored to x0, then x~ <- eta on M_{k-1} (not after the
last step). l' is the editing denoiser (another label, a CFG wrapper, an edited prompt). rule: "add" l + a z + b g,
"vp" l + sqrt(a) z + sqrt(b) g, "max" l + max(a z, b g) (no reconstruction: it drops negative residuals).
lambda2 = None means 1 - lambda1 (the release's rule); lambda_schedule: constant | linear | exp (below).
Reconstruction: l' = l, lambda1 = 1, lambda2 = 0 gives x~ = argmax l* = x0 whenever x~ = x_k, so by induction every
re-noised state equals the recorded x_{k-1} and the output is x0 bit for bit. With lambda1 = 0, lambda2 = 1 a step
is plain Gumbel-max sampling from softmax(l'/T).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from dlm.denoiser import Denoiser, as_prediction
from dlm.edit.trace import Trace, editable_mask, masking_levels, time_at_alpha
from dlm.process.base import Process
from dlm.registry import ConfigError, Registry
from dlm.utils.categorical import uniform_noise

LOG_FLOOR = -30.0  # clamps log 0 (SUBS carry-over, the mask column) so residuals stay finite
MARGIN = 1.0  # onehot_margin: x0 beats every other clean token of the target by this many nats; far above the
# rounding of a stored residual (|z| <= ~60: fp32 error ~1e-5, fp16 ~0.03)

TARGETS = Registry("DICE target")
RULES = Registry("DICE noise rule")
LAMBDA_SCHEDULES = Registry("DICE lambda schedule")


@TARGETS.register("model")
def _model_target(clean: Tensor, x0: Tensor, allowed: Tensor) -> Tensor:
    return clean


@TARGETS.register("onehot_margin")
def _onehot_margin_target(clean: Tensor, x0: Tensor, allowed: Tensor) -> Tensor:
    """clean (B, L, N) + m onehot(x0), m the smallest lift making x0 win by MARGIN over the allowed tokens (N,)."""
    onehot = torch.nn.functional.one_hot(x0, clean.shape[-1]).bool()
    rival = clean.masked_fill(onehot | ~allowed, float("-inf")).amax(-1, keepdim=True)  # (B, L, 1)
    lift = (rival - clean.gather(-1, x0.unsqueeze(-1)) + MARGIN).clamp_min(0)
    return clean + lift * onehot


@RULES.register("add")
def _add(logits: Tensor, z: Tensor, g: Tensor, lambda1: float, lambda2: float) -> Tensor:
    return logits + lambda1 * z + lambda2 * g


@RULES.register("vp")
def _variance_preserving(logits: Tensor, z: Tensor, g: Tensor, lambda1: float, lambda2: float) -> Tensor:
    return logits + math.sqrt(lambda1) * z + math.sqrt(lambda2) * g


@RULES.register("max")
def _max(logits: Tensor, z: Tensor, g: Tensor, lambda1: float, lambda2: float) -> Tensor:
    return logits + torch.maximum(lambda1 * z, lambda2 * g)


# lambda1 at edit step i = 0 (most noised) .. K-1 (last). The release's get_lambda_schedule is not public;
# these are ours: constant, linear down to 0 at the last step, exponential approach to 1 (rate 3 over the run).
@LAMBDA_SCHEDULES.register("constant")
def _constant(lambda1: float, i: int, steps: int) -> float:
    return lambda1


@LAMBDA_SCHEDULES.register("linear")
def _linear(lambda1: float, i: int, steps: int) -> float:
    return lambda1 * (1 - i / max(steps - 1, 1))


@LAMBDA_SCHEDULES.register("exp")
def _exponential(lambda1: float, i: int, steps: int) -> float:
    return 1 - (1 - lambda1) * math.exp(-3 * i / max(steps - 1, 1))


def clean_logits(process: Process, output, xt: Tensor, t: Tensor) -> Tensor:
    """The denoiser's log x_theta(x0 | x_t) in float64 (B, L, N), floored at LOG_FLOOR. A log-score output
    (SEDD) is turned into x0 probabilities first (Process.x0_from_score)."""
    prediction = as_prediction(output)
    if prediction.log_probs is not None:
        log_probs = prediction.log_probs.double()
    else:
        log_probs = process.x0_from_score(prediction.log_score.double().exp(), xt, t).log()
    return log_probs.nan_to_num(nan=LOG_FLOOR, neginf=LOG_FLOOR).clamp_min(LOG_FLOOR)


def _call(denoiser: Denoiser, process: Process, xt: Tensor, t: float) -> Tensor:
    times = torch.full((xt.shape[0],), t, dtype=torch.float32, device=xt.device)
    return clean_logits(process, denoiser(xt, times), xt, times)


@torch.no_grad()
def invert(denoiser: Denoiser, process: Process, x0: Tensor, *, steps: int, tau: float = 1.0,
           editable: Tensor | None = None, target: str = "onehot_margin", temperature: float = 1.0,
           generator: torch.Generator | None = None, residual_dtype: torch.dtype = torch.float32) -> Trace:
    """Record the DICE trace of x0 (B, L) (module docstring). editable: bool (B, L) or (1, L), default all; only
    editable positions are ever masked or stored. residual_dtype: torch.float32 (default) or torch.float16 (half
    the memory; the one-hot margin keeps the replay exact, the "model" target may lose near-ties)."""
    _check_settings(steps, tau, temperature)
    if not residual_dtype.is_floating_point:
        raise ConfigError(f"residual_dtype must be torch.float32 or torch.float16, got {residual_dtype}")
    target_fn = TARGETS.get_factory(target)
    process.check_tokens(x0)
    span = editable_mask(editable, x0)
    u = torch.rand(x0.shape, generator=generator, device=x0.device, dtype=torch.float64)
    eta = process.prior(tuple(x0.shape), generator=generator, device=x0.device)
    ratios = torch.linspace(0, tau, steps, dtype=torch.float64)
    level = torch.where(span, masking_levels(u, ratios.to(x0.device)), torch.full_like(x0, steps))
    times = time_at_alpha(process, 1 - ratios)
    best = target_fn(_call(denoiser, process, x0, 0.0), x0, process.clean_mask(x0))  # (B, L, N)
    trace = Trace(source=x0.clone(), eta=eta, level=level, editable=span, residuals=torch.empty(0), times=times,
                  process=process, tau=float(tau), target=target, temperature=float(temperature),
                  settings={"sampler": "predict_everything", "residual_dtype": str(residual_dtype)})
    residuals = torch.empty(steps, int(span.sum()), best.shape[-1], dtype=residual_dtype, device=x0.device)
    for k in range(steps):
        z = best - _call(denoiser, process, trace.state(k), float(times[k])) / temperature
        residuals[k] = z[span].to(residual_dtype)
    trace.residuals = residuals
    return trace


@torch.no_grad()
def edit(denoiser: Denoiser, trace: Trace, *, lambda1: float = 1.0, lambda2: float | None = None,
         rule: str = "add", lambda_schedule: str = "constant", generator: torch.Generator | None = None,
         on_step: Callable[[int, Tensor], None] | None = None) -> Tensor:
    """Replay `trace` under `denoiser` (module docstring) -> LongTensor (B, L). on_step(k, x) sees the state after
    step k's argmax and re-noising (x equals trace.state(k - 1) during an exact reconstruction)."""
    rule_fn, schedule_fn = RULES.get_factory(rule), LAMBDA_SCHEDULES.get_factory(lambda_schedule)
    process, steps, source = trace.process, trace.steps, trace.source
    x = trace.state(steps - 1)
    for i, k in enumerate(range(steps - 1, -1, -1)):
        lam1 = schedule_fn(lambda1, i, steps)
        lam2 = 1 - lam1 if lambda2 is None else lambda2
        if lam1 < 0 or lam2 < 0:
            raise ConfigError(f"DICE weights must be >= 0, got lambda1={lam1:g}, lambda2={lam2:g} at step {k}; "
                              "keep lambda1 in [0, 1] when lambda2 is None")
        logits = _call(denoiser, process, x, float(trace.times[k])) / trace.temperature
        if logits.shape[-1] != trace.residuals.shape[-1]:
            raise ConfigError(f"the editing denoiser returns {logits.shape[-1]} categories but the trace holds "
                              f"{trace.residuals.shape[-1]}; edit with a model of the same vocabulary")
        gumbel = _gumbel(logits.shape, generator, logits.device) if lam2 > 0 else torch.zeros_like(logits)
        scores = rule_fn(logits, trace.residual(k, logits), gumbel, lam1, lam2)
        scores = scores.masked_fill(~process.clean_mask(x), float("-inf"))
        x = torch.where(trace.editable, scores.argmax(-1), source)
        if k > 0:
            x = torch.where(trace.masked(k - 1), trace.eta, x)
        if on_step is not None:
            on_step(k, x)
    return x


def _gumbel(shape: tuple[int, ...], generator: torch.Generator | None, device) -> Tensor:
    """G = -log(-log U) in float64 (utils/categorical.py: fp32 noise truncates the Gumbel tail)."""
    exponential = -torch.log(uniform_noise(tuple(shape), generator=generator, device=device).clamp_min(1e-300))
    return -torch.log(exponential)


def _check_settings(steps: int, tau: float, temperature: float) -> None:
    if steps < 2:
        raise ConfigError(f"DICE needs steps >= 2 (mask levels linspace(0, tau, steps)), got {steps}")
    if not 0 < tau <= 1:
        raise ConfigError(f"tau is the largest mask ratio and must lie in (0, 1], got {tau}")
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
