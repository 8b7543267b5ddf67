"""The Sampler base class and `generate`, the only sampling loop.

A reverse step t -> s < t of every per-position sampler here is a short chain of *stages*: stage k maps the states
seen so far (x_t, then the intermediate draws) to a law over each position's next value, (B, L, N) float64, and
the context draws from it. One stage for MDLM/D3PM ancestral, SEDD analytic and Euler, tau-leaping; two for the
theta-methods of Ren et al. (arXiv 2502.00234). Because the laws are explicit, `exact.py` can compose them into
the exact distribution a sampler produces on a small toy. Under absorbing the draw is fused (fused.py): the same
law seen as stay-masked w.p. w, else q, so that only the positions that unmask read a row of the vocabulary; the
samplers say w in closed form where there is one (`stay`, `stay_bound`, `mask_law`). Under uniform a one-stage law
on a normalized x_theta is a mixture of a point mass at x_t, x_theta and the uniform law (mixture.py,
`uniform_mixture`), drawn the same way. Samplers that couple positions
(confidence remasking, autoregressive) override `step` instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from dlm.cache.base import CachePolicy, get_cache
from dlm.denoiser import Denoiser
from dlm.process.base import Capability, Process
from dlm.registry import FINAL_RULES, SAMPLERS, ConfigError
from dlm.sample.chunks import chunk_positions, chunked_draw
from dlm.sample.context import SamplingContext
from dlm.sample.final_rules import FinalRule
from dlm.sample.fused import FinalStage, MaskStage, StepStage, fused_draw
from dlm.sample.grids import TimeGrid
from dlm.sample.mixture import Mixture, mixture_draw
from dlm.sample.noise import Generators, NoiseTape
from dlm.sample.options import get_sampler
from dlm.sample.semi_ar import DecodeBlock, block_plan
from dlm.types import Prediction, StepOutput
from dlm.utils.categorical import NUCLEI, argmax_law, filtered_probs
from dlm.validation import check_finite, check_positive, check_prompt, check_shape

if TYPE_CHECKING:  # the fast paths' processes, named in annotations only: dispatch is by capability
    from dlm.process.absorbing import Absorbing
    from dlm.process.uniform import Uniform


@dataclass
class Sampler:
    """Options every sampler takes.

    temperature / top_k / top_p reshape x_theta before it is used (temperature 0 = argmax of x_theta); nucleus: the
    top-p set, "reach" (the smallest set of top tokens whose mass reaches top_p) or "strict" (the largest whose mass
    stays <= top_p, the BD3LM reference's; utils/categorical.py: filtered_probs);
    block_size > 0 decodes semi-autoregressively in blocks (masked processes only, semi_ar.py);
    eps: the grid ends at t = eps (docs/samplers.md); final: noise removal at eps draws x0 at the positions that are
    still undetermined ("sample") or takes the argmax ("argmax"), so no mask survives;
    chunk_positions: how many positions' laws are computed and drawn at once (chunks.py; 0 = as many as fit 4 MB
    in float64, -1 = all of them at once: one (B, L, N) law, or under absorbing / uniform one chunk of the fused /
    mixture draw, fused.py / mixture.py). The samples do not depend on it.
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    nucleus: str = "reach"
    block_size: int = 0
    eps: float = 1e-5
    final: str = "sample"
    chunk_positions: int = 0

    # the process capabilities this sampler reads (process/base.py: Capability); None: no process at all (the causal
    # model's own chain). The default: the CTMC rates and score <-> mean maps of a fixed-pi mixture.
    needs: ClassVar[frozenset[Capability] | None] = frozenset({Capability.FIXED_MIXTURE})
    stages: ClassVar[int] = 1
    evaluates_row_subsets: ClassVar[bool] = False  # calls the denoiser on some rows only: no cache policy

    def __post_init__(self):
        check_finite("temperature", self.temperature)
        check_finite("top_p", self.top_p)
        for name, rule, ok in (("temperature", "temperature >= 0", self.temperature >= 0),
                               ("top_p", "0 < top_p <= 1", 0 < self.top_p <= 1),
                               ("top_k", "top_k >= 0", self.top_k >= 0),
                               ("block_size", "block_size >= 0", self.block_size >= 0)):
            if not ok:  # named as the option and as the CLI flag a user typed
                flag = "--" + name.replace("_", "-")
                raise ConfigError(f"{name}={getattr(self, name)} is out of range: need {rule} ({flag} of dlm sample "
                                  f"/ infill; sampler {type(self).__name__})")
        if self.nucleus not in NUCLEI:
            raise ConfigError(f"nucleus must be one of {NUCLEI}, got '{self.nucleus}'")
        if self.final not in FINAL_RULES:
            raise ConfigError(f"final must be one of {tuple(FINAL_RULES)}, got '{self.final}'")
        self.final_rule: FinalRule = FINAL_RULES.build(self.final)

    @property
    def name(self) -> str:
        """The name this sampler is registered under in SAMPLERS."""
        return next(name for name, factory in SAMPLERS.items() if factory is type(self))

    # --- configuration ---------------------------------------------------------------------------------
    def check(self, process: Process | None) -> None:
        """Raise a one-line ConfigError when this sampler cannot run on `process`."""
        if not runs_on(type(self), process):
            usable = ", ".join(name for name, factory in sorted(SAMPLERS.items()) if runs_on(factory, process))
            needs = "no process" if self.needs is None else sorted(c.value for c in self.needs)
            raise ConfigError(f"sampler {type(self).__name__} supports processes with {needs}, got "
                              f"{type(process).__name__}; choose a sampler for it: {usable or 'none registered'}")
        if self.block_size and Capability.ABSORBING not in process.capabilities:
            raise ConfigError("block_size (semi-autoregressive decoding) needs a masked (absorbing) process")

    def grid(self, steps: int) -> TimeGrid:
        return TimeGrid.linear(steps, self.eps)

    def blocks(self, editable: Tensor, steps: int) -> list[DecodeBlock]:
        return block_plan(editable, self.block_size, steps)

    def token_steps(self, new: int) -> int:
        """generate's `steps` for one reverse step per token over `new` generated positions: `new`, rounded up to a
        multiple of the semi-AR block count (block_plan splits the steps evenly over the blocks)."""
        blocks = -(-new // self.block_size) if self.block_size else 1
        return -(-new // blocks) * blocks

    def default_cache(self, denoiser: Denoiser) -> CachePolicy | None:
        """The cache policy this sampler attaches when generate gets none (the AR sampler's KV cache)."""
        return None

    def initial(self, ctx: SamplingContext, free: Tensor) -> Tensor:
        """x_1 ~ pi at the free positions (bool (B, L)) by inverse CDF: one uniform per free position, none when pi
        is a point mass (e.g. all masks). Other positions get an arbitrary id (generate clamps them)."""
        pi = ctx.process.limit(torch.empty(0, dtype=torch.float64, device=free.device))
        x = torch.full(free.shape, int(pi.argmax()), dtype=torch.long, device=free.device)
        if float(pi.max()) == 1.0 or not bool(free.any()):
            return x
        u = ctx.uniform((int(free.sum()),), free.device, rows=free.nonzero()[:, 0])
        x[free] = torch.searchsorted(pi.cumsum(0), u, right=True).clamp_max(len(pi) - 1)
        return x

    # --- what the denoiser says ------------------------------------------------------------------------
    def predict(self, ctx: SamplingContext, xt: Tensor, t: float) -> Prediction:
        return ctx.predict(xt, t)

    def reshaped(self) -> bool:
        """Whether temperature / top-k / top-p change x_theta (then score models go through x_theta too)."""
        return not (self.temperature == 1 and self.top_k == 0 and self.top_p == 1)

    def x0_probs(self, ctx: SamplingContext, xt: Tensor, t: float, prediction: Prediction | None = None) -> Tensor:
        """x_theta(x0 | x_t) as probabilities (B, L, N) float64 after temperature (0 = argmax) / top-k / top-p."""
        prediction = self.predict(ctx, xt, t) if prediction is None else prediction
        return self.reshape(ctx.process.x0_probs(prediction, xt, _times(t, xt)))

    def x0(self, ctx: SamplingContext, xt: Tensor, t: float, prediction: Prediction | None = None) -> Tensor:
        """Deprecated name of x0_probs (x0 means token ids elsewhere)."""
        warnings.warn("Sampler.x0 is deprecated: use Sampler.x0_probs", DeprecationWarning, stacklevel=2)
        return self.x0_probs(ctx, xt, t, prediction)

    def masked_x0(self, ctx: SamplingContext, xt: Tensor, t: float) -> Tensor:
        """x0 at masked positions xt (n, 1) -> (n, N), in the prediction's dtype unless reshaped (Absorbing)."""
        if self.reshaped():
            return self.x0_probs(ctx, xt, t)[:, 0]
        return ctx.process.x0_at_masks(self.predict(ctx, xt, t))[:, 0]

    def reshape(self, probs: Tensor) -> Tensor:
        """Probabilities (..., N) after temperature (0 = argmax) / top-k / top-p, float64."""
        if not self.reshaped():
            return probs
        if self.temperature == 0:
            return argmax_law(probs)
        return filtered_probs(probs.log(), temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
                              nucleus=self.nucleus)

    def uses_x0(self, prediction: Prediction) -> bool:
        """Whether the stage laws read x_theta (normalized), not the concrete score: mean models, or reshaping."""
        return prediction.log_score is None or self.reshaped()

    def rates(self, ctx: SamplingContext, xt: Tensor, t: float) -> Tensor:
        """Reverse CTMC rates R_t(x_t -> y) (B, L, N), 0 at the current token (Process.reverse_rates / mean_rates)."""
        prediction = self.predict(ctx, xt, t)
        if not self.uses_x0(prediction):
            return ctx.process.reverse_rates(prediction.log_score.double().exp(), xt, _times(t, xt))
        return ctx.process.mean_rates(self.x0_probs(ctx, xt, t, prediction), xt, _times(t, xt))

    # --- the fused masked path (fused.py): stage laws at masked origins as stay w.p. w, else q ---------------
    def origin(self, hist: list[Tensor]) -> Tensor:
        """The state stage len(hist) - 1 starts from (its stay state): hist[-1] unless the stage restarts."""
        return hist[-1]

    def stay(self, process: Absorbing, hist: list[Tensor], t: float, s: float) -> Tensor | float | None:
        """On the x_theta path: the exact stay probability w at masked origins of stage len(hist) - 1, a scalar or
        elementwise in hist, for a stage whose clean part q is x_theta(. | hist[0]) at t; None when there is none
        (then (w, q) are read off stage_probs where needed)."""
        return None

    def mask_law(self, ctx: SamplingContext, hist: list[Tensor], t: float, s: float) -> tuple[Tensor, Tensor] | None:
        """On the x_theta path: (w (n,), q (n, N)) at n masked origins (hist entries (n, 1), a PositionChunk), or
        None to read them off stage_probs. Default: the exact `stay` with q = x_theta(. | hist[0]) at t."""
        w = self.stay(ctx.process, hist, t, s)
        if w is None:
            return None
        w = torch.as_tensor(w, dtype=torch.float64, device=hist[0].device).expand(hist[0].shape)
        return w.reshape(-1), self.masked_x0(ctx, hist[0], t)

    def stay_bound(self, process: Absorbing, hist: list[Tensor], t: float, s: float) -> Tensor | float:
        """On the x_theta path: a lower bound on w at masked origins from scalars only (default: `stay`, else 0)."""
        w = self.stay(process, hist, t, s)
        return 0.0 if w is None else w

    def uniform_mixture(self, process: Uniform, p_x: Tensor, t: float, s: float) -> Mixture | None:
        """Uniform process on the x_theta path: the one-stage law as a Mixture (mixture.py) from p_x = x_theta(x_t)
        (n,) float64, or None (then the explicit stage_probs is drawn)."""
        return None

    # --- stepping --------------------------------------------------------------------------------------
    def stage_probs(self, ctx: SamplingContext, hist: list[Tensor], memo: dict, t: float, s: float) -> Tensor:
        """Law of every position's value after stage len(hist) - 1, given hist = [x_t, draws of earlier stages].
        memo carries per-row tensors (leading dim B) from earlier stages of the same step. -> (B, L, N)."""
        raise NotImplementedError(f"{type(self).__name__} overrides step() instead")

    def step(self, ctx: SamplingContext, xt: Tensor, grid: TimeGrid, i: int) -> StepOutput:
        """One reverse step t_i -> t_{i+1}: run the stages, drawing each from its law."""
        t, s = grid.t(i), grid.s(i)

        def law(c: SamplingContext, hist: list[Tensor], memo: dict) -> Tensor:
            return self.stage_probs(c, hist, memo, t, s)

        hist, memos = [xt], {}
        for _ in range(self.stages):
            hist.append(self.draw(ctx, hist, memos, law, ctx.process.movable(xt), StepStage(self, t, s)))
        return StepOutput(xs=hist[-1])

    def draw(self, ctx: SamplingContext, hist: list[Tensor], memos: dict, law: Callable, active: Tensor,
             stage: MaskStage) -> Tensor:
        """hist[-1] redrawn from law(ctx, hist, memo) at the active (bool (B, L)) editable positions. Absorbing:
        the fused draw (fused.py; `stage` is the same law seen from masked origins); uniform: the mixture draw where
        the law is one (mixture.py). Otherwise Gumbel-max chunk by chunk (chunks.py), or from one (B, L, N) law when
        chunk_positions < 0. Samples do not depend on the chunks."""
        capabilities = ctx.process.capabilities
        fast = Capability.ABSORBING in capabilities or Capability.UNIFORM_PRIOR in capabilities
        if self.chunk_positions < 0 and not fast:
            return ctx.draw(law(ctx, hist, memos), hist[-1])
        if ctx.editable is not None:
            active = active & ctx.editable
        size = chunk_positions(ctx.process.width, self.chunk_positions) if self.chunk_positions >= 0 else -1
        if Capability.ABSORBING in capabilities:
            return fused_draw(ctx, self.predict, stage, hist, memos, active, size)
        if Capability.UNIFORM_PRIOR in capabilities:
            return mixture_draw(ctx, self.predict, stage, hist, memos, law, active, size)
        return chunked_draw(ctx, self.predict, hist, memos, law, active, size)

    def decode(self, ctx: SamplingContext, x: Tensor, fixed: Tensor, steps: int,
               on_step: Callable[[int, float, Tensor], None] | None = None) -> Tensor:
        """The sampling loop from the initial state x (B, L): for each block of `blocks` (one without semi-AR
        decoding), its grid's steps and the noise removal; fixed (B, L) bool: never edited. on_step as generate's,
        from index 1. A sampler with another loop (the block sampler, block.py) overrides this."""
        index = 0
        for block in self.blocks(~fixed, steps):
            ctx.editable = block.editable
            if isinstance(ctx.cache, CachePolicy):
                ctx.cache.begin_block(block.editable)
            grid = self.grid(block.steps)
            for i in range(grid.steps):
                x = self.step(ctx, x, grid, i).xs
                index += 1
                if on_step is not None:
                    on_step(index, grid.s(i), x)
            x = self.finish(ctx, x, grid)
            index += 1
            if on_step is not None:
                on_step(index, 0.0, x)
        return x

    def final_probs(self, ctx: SamplingContext, x: Tensor, t: float) -> Tensor:
        """Noise removal t -> 0: the Bayes posterior p(x0^l | x_t) per position (SEDD's Denoiser step)."""
        return ctx.process.x0_posterior(self.x0_probs(ctx, x, t), x, _times(t, x))

    def finish(self, ctx: SamplingContext, x: Tensor, grid: TimeGrid) -> Tensor:
        """Resolve every position x does not yet determine (masks; all of them for uniform). No NFE if none."""
        undetermined = undetermined_positions(ctx.process, x, grid.end)
        if ctx.editable is not None:
            undetermined &= ctx.editable
        if not bool(undetermined.any()):
            return x

        def law(c: SamplingContext, hist: list[Tensor], memo: dict) -> Tensor:
            return self.final_rule(self.final_probs(c, hist[0], grid.end))

        return self.draw(ctx, [x], {}, law, undetermined, FinalStage(self, grid.end))


def undetermined_positions(process: Process, x: Tensor, t: float) -> Tensor:
    """bool (B, L): positions where more than one clean token is compatible with x at time t (Absorbing: the masks,
    uniform: every position, while alpha_t < 1, without a pass over the vocabulary)."""
    noisy = bool(process.schedule.alpha(torch.tensor(t, dtype=torch.float64)) < 1)
    if Capability.ABSORBING in process.capabilities:
        return (x == process.mask_id) & noisy
    if Capability.UNIFORM_PRIOR in process.capabilities:  # q_t(x_t | x0) >= (1 - alpha_t) / N > 0 for every x0
        return torch.full(x.shape, noisy, dtype=torch.bool, device=x.device)
    flat = x.reshape(-1, 1)  # positions in chunks: allowed_x0 is (n, 1, N)
    parts = [process.allowed_x0(c, _times(t, c)).sum(-1) > 1 for c in flat.split(chunk_positions(process.width))]
    return torch.cat(parts).view(x.shape)


def runs_on(sampler: type[Sampler], process: Process | None) -> bool:
    """Whether a sampler class can run on `process`: it needs no process and gets none, or the process has every
    capability it needs."""
    if sampler.needs is None or process is None:
        return sampler.needs is None and process is None
    return sampler.needs <= process.capabilities


def _times(t: float, like: Tensor) -> Tensor:
    return torch.full((like.shape[0],), t, dtype=torch.float64, device=like.device)


def generate(denoiser: Denoiser, process: Process | None, sampler: str | Sampler, *, steps: int,
             shape: tuple[int, int] | None = None, prompt: Tensor | None = None, prompt_mask: Tensor | None = None,
             generator: Generators = None, cache: Any = None, attention_mask: Tensor | None = None,
             on_step: Callable[[int, float, Tensor], None] | None = None, noise: NoiseTape | None = None) -> Tensor:
    """Sample (B, L) token ids by running `sampler` on `denoiser` from the prior of `process`.

    shape: (B, L), or taken from prompt_mask. prompt + prompt_mask (bool (B, L) or (1, L)): positions where the mask
    is True are clamped to prompt (any spans: infilling); a prompt without a mask is a prefix of a (B, L) output.
    generator: torch.Generator for every draw, or a list of B generators, one per row (row b's draws then come from
    generator b alone); noise: a NoiseTape to record or replay them (then `generator` is only used while
    recording). on_step(index, t, x) sees the initial state (0, 1.0, x_1), every step, and the noise removal of
    each block (t = 0.0).
    cache: a dlm.cache.CachePolicy or a registered name ("dkv_decode", "dkv_greedy", "prefix", "dual", "append"):
    reset at the start, told where each block begins, and passed to the denoiser as `cache=`; any other object is
    only passed through. Without one, the sampler may attach its own (the AR sampler's KV cache).
    attention_mask: bool (B, L), False at padding (rows of different lengths, right-padded): padding is never
    edited and the denoiser gets attention_mask= so that nothing attends to it.
    """
    sampler = get_sampler(sampler) if isinstance(sampler, str) else sampler
    sampler.check(process)
    check_positive("steps", steps)
    check_shape(shape)
    check_prompt(prompt)
    device = _device(denoiser, prompt, generator)
    prompt, fixed = _clamp(shape, prompt, prompt_mask, device)
    if process is not None:  # the one token-range check of sampling: the backbone's forward does none
        process.check_tokens(prompt[fixed])
    if attention_mask is not None:
        attention_mask = attention_mask.to(device).bool().expand_as(fixed)
        fixed = fixed | ~attention_mask
    cache = _cache_policy(cache, sampler, denoiser)
    ctx = SamplingContext(denoiser, process, generator=generator, noise=noise, cache=cache,
                          attention_mask=attention_mask)
    x = torch.where(fixed, prompt, sampler.initial(ctx, ~fixed))
    if on_step is not None:
        on_step(0, 1.0, x)
    return sampler.decode(ctx, x, fixed, steps, on_step)


def _cache_policy(cache: Any, sampler: Sampler, denoiser: Denoiser) -> Any:
    """A name -> the registered policy; None -> the sampler's default; a policy is reset for the new run."""
    if isinstance(cache, str):
        cache = get_cache(cache)
    if cache is None:
        cache = sampler.default_cache(denoiser)
    if isinstance(cache, CachePolicy):
        if sampler.evaluates_row_subsets:
            raise ConfigError(f"sampler {type(sampler).__name__} evaluates the denoiser on changing subsets of rows, "
                              "which a cache policy cannot serve; use 'ancestral' with the cache")
        cache.reset()
    return cache


def _device(denoiser, prompt: Tensor | None, generator: Generators) -> torch.device:
    if prompt is not None:
        return prompt.device
    if generator is not None:
        return (generator if isinstance(generator, torch.Generator) else generator[0]).device
    if isinstance(denoiser, torch.nn.Module):
        return next(denoiser.parameters(), torch.empty(0)).device
    return torch.device("cpu")


def _clamp(shape, prompt: Tensor | None, prompt_mask: Tensor | None, device) -> tuple[Tensor, Tensor]:
    """-> (prompt (B, L) long, fixed (B, L) bool) from the three ways to say what is known."""
    if prompt is None:
        if prompt_mask is not None:
            raise ConfigError("prompt_mask needs a prompt: the token ids to clamp")
        if shape is None:
            raise ConfigError("give shape=(batch, length) or a prompt")
        return (torch.zeros(tuple(shape), dtype=torch.long, device=device),
                torch.zeros(tuple(shape), dtype=torch.bool, device=device))
    prompt = prompt.to(device).long()
    if prompt_mask is None:
        if shape is None or shape[1] < prompt.shape[1]:
            raise ConfigError("a prompt without prompt_mask is a prefix: give shape=(batch, total length >= prompt)")
        prompt_mask = torch.zeros(1, shape[1], dtype=torch.bool, device=device)
        prompt_mask[:, :prompt.shape[1]] = True
        prompt = torch.nn.functional.pad(prompt, (0, shape[1] - prompt.shape[1]))
    prompt_mask = prompt_mask.to(device).bool()
    batch = shape[0] if shape is not None else max(prompt.shape[0], prompt_mask.shape[0])
    if prompt.shape[0] not in (1, batch) or prompt_mask.shape[0] not in (1, batch):
        raise ConfigError(f"prompt {tuple(prompt.shape)} and prompt_mask {tuple(prompt_mask.shape)} need batch 1 "
                          f"or {batch}")
    length = prompt_mask.shape[1]
    if prompt.shape[1] != length or (shape is not None and shape[1] != length):
        raise ConfigError(f"prompt {tuple(prompt.shape)}, prompt_mask {tuple(prompt_mask.shape)} and shape {shape} "
                          "must agree on the length")
    return prompt.expand(batch, length).clone(), prompt_mask.expand(batch, length).clone()
