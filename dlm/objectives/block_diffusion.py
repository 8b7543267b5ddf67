"""Block diffusion (BD3LM, Arriola et al., arXiv 2503.09573): masked diffusion inside blocks, autoregressive across.

The sequence x (length L) is cut into K = L / b blocks of b = objective.block_size tokens; the model factorizes
    -log p(x) = sum_k -log p(x^k | x^{<k}) <= sum_k E_{t_k} E_{x_t^k} [ w(t_k) sum_{j in k: x_t^j = m}
                                                                     -log x_theta^j(x^j | x_t^k, x^{<k}) ]
(arXiv 2503.09573 eq. 7; w(t) = -alpha'_t / (1 - alpha_t), the MDLM weight, 1/t for the log-linear schedule), one
time t_k per block, drawn stratified over the B x K (row, block) pairs of the batch. The denoiser is SUBS (the
masked ELBO's, objectives/masked_elbo.py). b = L is MDLM (one block: the same draws and loss as masked_elbo);
b = 1 with the window [1, 1] is an autoregressive model's exact chain rule.

Training reads every block in ONE forward (the vectorised two-stream input, docs/block_diffusion.md): the backbone
sees x_t ⊕ x_0 (length 2L), both halves at positions 0..L-1, under the mask
    x_t block k -> x_t block k (bidirectional) and x_0 blocks < k;   x_0 block k -> x_0 blocks <= k,
and the logits of the x_t half are block k's x_theta(. | x_t^k, x^{<k}) for every k at once. Sampling (the block
sampler, sample/block.py) decodes block by block over an exact KV cache of the clean prefix, whose keys and values
are what the x_0 stream computes.

objective.clip = [beta, omega] draws the training times from U[beta, omega] (the clipped schedule, arXiv 2503.09573
§5.2: lower-variance gradients); evaluation (`elbo`) always uses the unbiased window (0, 1], except b = 1, whose
window [1, 1] is exact (no Monte Carlo).

objective.logit_shift (off by default; for a model converted from an autoregressive checkpoint, train/init_from.py):
the prediction of the token at position j is read from the backbone output at j - 1, as the AR-to-diffusion
adaptations DiffuLLaMA (arXiv 2410.17891), Dream (arXiv 2508.15487) and Fast-dLLM v2 (arXiv 2509.26328) read it.
In the two-stream forward, j - 1 is in the x_t stream when it is in j's block and in the x_0 stream when j starts a
block (the clean previous block); position 0 keeps its own output. In one block-causal pass over [clean prefix, noisy
block] (sampling) that is the plain shift of the output by one position.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from dlm.config import ObjectiveConfig, RunConfig
from dlm.denoiser import Denoiser
from dlm.eval.likelihood import stratified_times
from dlm.objectives.base import (
    AttentionPattern,
    LogitsFn,
    Objective,
    clamp_condition,
    condition_positions,
    reduce_per_token,
)
from dlm.objectives.clip_search import ClipSearch
from dlm.objectives.masked_elbo import subs
from dlm.process.absorbing import Absorbing
from dlm.process.base import Capability
from dlm.registry import OBJECTIVES, ConfigError
from dlm.types import LossOutput, Prediction
from dlm.utils.cross_entropy import nll_from_logits
from dlm.validation import check_attention_mask, check_batch, check_positive

if TYPE_CHECKING:
    from dlm.sample.base import Sampler


def two_stream_pattern(length: int, block_size: int, device: torch.device | None = None) -> Tensor:
    """The block-diffusion mask over x_t ⊕ x_0, bool (2L, 2L), True = may attend (arXiv 2503.09573 §3.2):
    a query of stream s (0: x_t, 1: x_0) in block k sees
        same stream, same block       (bidirectional inside the block, both streams),
        x_t query -> x_0 blocks < k   (the clean context of a noisy block),
        x_0 query -> x_0 blocks <= k  (the clean stream is block-causal; it never sees x_t).
    """
    index = torch.arange(2 * length, device=device)
    stream, block = index // length, (index % length) // block_size
    q_stream, k_stream = stream[:, None], stream[None, :]
    q_block, k_block = block[:, None], block[None, :]
    own_block = (q_block == k_block) & (q_stream == k_stream)
    noisy_to_clean = (q_block > k_block) & (q_stream == 0) & (k_stream == 1)
    clean_to_clean = (q_block >= k_block) & (q_stream == 1) & (k_stream == 1)
    return own_block | noisy_to_clean | clean_to_clean


def shifted(logits: Tensor) -> Tensor:
    """(B, n, N) -> the same with position j holding the output of j - 1 (position 0 keeps its own): the logit
    shift of one block-causal pass over [clean prefix, noisy block]."""
    return torch.cat([logits[:, :1], logits[:, :-1]], dim=1)


@OBJECTIVES.register("block_diffusion")
class BlockDiffusion(Objective):
    """BD3LM. Family policy: block-causal attention over blocks of `block_size`, the absorbing process, SUBS, time
    conditioning off (as in the reference), the block sampler (sample/block.py) by default, no infilling (a block
    sees only the text before it)."""

    attention = AttentionPattern.BLOCK_CAUSAL
    default_sampler = "block"
    needs = frozenset({Capability.ABSORBING})  # SUBS carries clean tokens over: only masks may move
    infills = False
    shifts_logits = True
    default_block_size = 4  # the paper's smallest block (arXiv 2503.09573 Table 1), when objective.block_size is 0

    def __init__(self, process: Absorbing, cfg: ObjectiveConfig):
        super().__init__(process, cfg)
        block = cfg.block_size or self.default_block_size
        if block < 1:
            raise ConfigError(f"objective 'block_diffusion' needs objective.block_size >= 1 (the paper's L'), got "
                              f"{cfg.block_size}")
        beta, omega = (float(v) for v in cfg.clip)
        if not 0.0 <= beta <= omega <= 1.0:
            raise ConfigError(f"objective.clip=[{beta}, {omega}] must satisfy 0 <= beta <= omega <= 1")
        if beta == 1.0 and block != 1:
            raise ConfigError("objective.clip=[1, 1] (every token masked, weight 1) is the exact chain rule only for "
                              f"objective.block_size=1, got {block}")
        if cfg.discrete_steps or cfg.token_reweight_gamma:
            raise ConfigError("objective 'block_diffusion' takes no discrete_steps or token_reweight_gamma")
        self.mask_id = process.mask_id
        self.block_size = self.attention_block = block
        self.clip = (beta, omega)
        self.logit_shift = bool(cfg.logit_shift)
        self.exact_likelihood = block == 1  # evaluated on the window [1, 1]: the chain rule, no sampling

    @classmethod
    def from_config(cls, cfg: RunConfig, vocab_size: int, mask_id: int | None = None) -> BlockDiffusion:
        block = cfg.objective.block_size or cls.default_block_size
        if block >= 1 and cfg.data.seq_len % block:
            raise ConfigError(f"objective.block_size={block} must divide data.seq_len={cfg.data.seq_len}")
        return super().from_config(cfg, vocab_size, mask_id)

    def sampler(self, name: str | None = None, **options) -> Sampler:
        """The block sampler (sample/block.py) over this block size; `name` picks the sampler it runs inside each
        block (any masked sampler, default ancestral), or names "block" itself. With logit_shift the first token of
        a block is read from the previous block's last output, which the KV cache does not keep: such a model
        samples without it (recomputing the prefix, the same tokens)."""
        from dlm.sample.block import block_sampler  # sample/ imports the objectives' layer

        if self.logit_shift:
            if options.get("kv_cache"):
                raise ConfigError("a block model with objective.logit_shift samples without the KV cache (a block's "
                                  "first token reads the previous block's output): drop kv_cache")
            options["kv_cache"] = False
        return block_sampler(self, name, **options)

    def condition_at(self, t: Tensor | None, tokens: Tensor, positions: Tensor | None, length: int) -> Tensor | None:
        """Per-token times (B, n) (the two-stream forward) are used as given. A sampling pass (t (B,) or None) runs
        on [clean prefix, current block], the window's last block: that block's tokens are conditioned on t and the
        clean blocks before it on t = 0, as the training forward's x_0 stream; t = None (the clean pass that
        commits a finished block's keys/values) is t = 0 everywhere. So cached sampling of a time-conditioned model
        stores exactly the x_0 stream's keys/values."""
        if not self.time_conditioning or (t is not None and t.dim() == 2):
            return self.condition(t)
        B, n = tokens.shape
        positions = torch.arange(n, device=tokens.device).expand(B, n) if positions is None else positions
        current = positions // self.block_size == (length - 1) // self.block_size
        times = torch.zeros(B, n, device=tokens.device) if t is None else torch.where(current, t[:, None].float(), 0.0)
        return self.condition(times)

    # --- the parameterization ------------------------------------------------------------------------------
    def predict(self, logits: Tensor, xt: Tensor, t: Tensor | None) -> Prediction:
        """SUBS on the logits of one block-causal pass (sampling), shifted by one position with logit_shift."""
        return Prediction(log_probs=subs(shifted(logits) if self.logit_shift else logits, xt, self.mask_id))

    def weight(self, t: Tensor) -> Tensor:
        """Per-token weight of the bound at t (B, L): the MDLM weight, or 1 in the window [1, 1] (b = 1: every
        block's one token masked and scored once, the chain rule)."""
        if self.clip[0] == 1.0:
            return torch.ones_like(t)
        return self.process.schedule.masked_weight(t)

    def integrand(self, logits: Tensor, x0: Tensor, xt: Tensor, t: Tensor) -> Tensor:
        """(B, L) w(t_{blk(j)}) 1{x_t^j = m} (-log x_theta^j(x0^j)), t per token (B, L); logits of the x_t half."""
        nll = nll_from_logits(logits, x0, exclude=self.mask_id)
        return self.weight(t).to(nll.dtype) * nll * (xt == self.mask_id)

    # --- draws --------------------------------------------------------------------------------------------
    def n_blocks(self, length: int) -> int:
        if length % self.block_size:
            raise ConfigError(f"sequence length {length} is not a multiple of objective.block_size="
                              f"{self.block_size}")
        return length // self.block_size

    def block_times(self, batch: int, length: int, window: tuple[float, float], *,
                    generator: torch.Generator | None = None, device: torch.device | None = None) -> Tensor:
        """(B, L) float32 times, one per block repeated over its tokens: u stratified over the B x K (row, block)
        pairs (objective.time_sampler), t = beta' + (omega - beta') u with beta' = max(beta, sampling_eps).
        With K = 1 these are masked_elbo's times, draw for draw."""
        n = self.n_blocks(length)
        low, high = max(window[0], self.cfg.sampling_eps), window[1]
        u = self.time_sampler.u(batch * n, generator=generator, device=device).view(batch, n)
        t = ((high - low) * u + low).float() if window[0] < 1.0 else torch.ones(batch, n, device=device)
        return t.repeat_interleave(self.block_size, dim=1)

    def corrupt(self, x0: Tensor, t: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """x_t: each token masked with probability 1 - alpha_t at its block's t (B, L); the window [1, 1] masks
        every token. The same uniform draws as Process.corrupt."""
        if self.clip[0] == 1.0:  # b = 1 only (checked): the chain rule, exact in training and validation
            return torch.full_like(x0, self.mask_id)
        alpha = self.process.schedule.alpha(t.to(torch.float64))
        replace = torch.rand(x0.shape, generator=generator, device=x0.device, dtype=torch.float64) >= alpha
        return torch.where(replace, self.mask_id, x0)

    # --- the two-stream forward -----------------------------------------------------------------------------
    def two_stream_logits(self, logits_fn: LogitsFn, xt: Tensor, x0: Tensor, t: Tensor | None,
                          attention_mask: Tensor | None = None) -> Tensor:
        """Backbone logits (B, L, N) of every block's x_theta(. | x_t^k, x^{<k}), read on the x_t half of one
        forward on x_t ⊕ x_0 (B, 2L) at positions (0..L-1, 0..L-1) under two_stream_pattern. t: per token (B, L);
        the x_0 half is clean (t = 0). attention_mask: bool (B, L), False at padding keys (both halves)."""
        L = x0.shape[1]
        kwargs = {"positions": torch.arange(L, device=x0.device).repeat(2),
                  "attention_pattern": two_stream_pattern(L, self.block_size, x0.device)}
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask.bool().repeat(1, 2)
        times = torch.cat([t, torch.zeros_like(t)], dim=1) if self.time_conditioning else None
        logits = logits_fn(torch.cat([xt, x0], dim=1), times, **kwargs)
        if not self.logit_shift:
            return logits[:, :L]
        noisy, clean = logits[:, :L], logits[:, L:]
        block_start = (torch.arange(L, device=x0.device) % self.block_size == 0)[None, :, None]
        # position j reads j - 1: the noisy stream inside its block, the clean previous block at a block start
        previous_clean = torch.cat([noisy[:, :1], clean[:, :-1]], dim=1)
        return torch.where(block_start, previous_clean, shifted(noisy))

    def loss(self, logits_fn: LogitsFn, x0: Tensor, attention_mask: Tensor | None = None, *,
             generator: torch.Generator | None = None, condition_mask: Tensor | None = None,
             step: int | None = None) -> LossOutput:
        """One draw of a time per block and of x_t; per-token mean over non-pad tokens (as masked_elbo, whose
        draws and loss it reproduces at block_size = L). Padding is not hidden from the backbone in training,
        as in masked_elbo. The times come from the clipped window objective.clip when the loss is differentiated
        (training) and from the unbiased window otherwise (validation reports a bound, arXiv 2503.09573 §5.2).
        condition_mask: bool (B, L), True at each row's prompt (SFT, docs/posttraining.md#sft), or'ed with
        objective.condition_prefix: kept clean in x_t and unscored (as masked_elbo's clamp_condition), so a response
        block reads the prompt as clean context (from the x_0 stream for earlier blocks, from its own block's x_t
        where the prompt ends inside it) and the loss bounds -log p(response | prompt)."""
        B, L = x0.shape
        window = self.clip if torch.is_grad_enabled() or self.clip[0] == 1.0 else (0.0, 1.0)
        t = self.block_times(B, L, window, generator=generator, device=x0.device)
        xt, scored = self.corrupt(x0, t, generator=generator), attention_mask
        condition = condition_positions(x0, self.cfg.condition_prefix, condition_mask)
        if condition is not None:
            xt, scored = clamp_condition(x0, xt, attention_mask, condition)
        logits = self.two_stream_logits(logits_fn, xt, x0, t)
        return reduce_per_token(self.integrand(logits, x0, xt, t), scored, per_row=self.cfg.loss_per_row)

    def token_log_probs(self, logits_fn: LogitsFn, ids: Tensor, completion: Tensor, *, prompt_mask_prob: float = 0.0,
                        generator: torch.Generator | None = None) -> Tensor:
        """d1's one-step estimator (arXiv 2504.12216 §3.2) on blocks, as
        docs/posttraining.md#per-token-log-probabilities describes: the context c = ids with each non-completion
        position masked independently with probability prompt_mask_prob (the prompt perturbation of d1; p = 0:
        c = ids), x_t = c with every completion position
        masked, and ONE two-stream forward on x_t ⊕ c at t = 1 gives, at each completion position k of block b(k),
            log pi(o_k) ~ log x_theta(o_k | x_t^{b(k)}, c^{<b(k)}),
        the SUBS log-probability of o_k with its block's completion fully masked and everything before the block
        (prompt and earlier completion blocks) clean. block_size = L is masked_elbo's estimator draw for draw;
        block_size = 1 with p = 0 is the exact log p(o_k | o_{<k}, prompt) (the chain rule). -> (B, L) float32, 0
        outside the completion."""
        completion = completion.bool()
        u = torch.rand(ids.shape, generator=generator, device=ids.device)
        context = torch.where(~completion & (u < prompt_mask_prob), self.mask_id, ids)
        xt = torch.where(completion, self.mask_id, context)
        logits = self.two_stream_logits(logits_fn, xt, context, torch.ones(ids.shape, device=ids.device))
        nll = nll_from_logits(logits, ids, exclude=self.mask_id)
        return torch.where(completion, -nll.float(), torch.zeros_like(nll, dtype=torch.float32))

    def state_dict(self) -> dict:
        return {"clip": list(self.clip)}

    def load_state_dict(self, state: dict) -> None:
        if "clip" in state:
            self.clip = tuple(float(v) for v in state["clip"])

    def validation_search(self) -> ClipSearch | None:
        """The clipped-window search when objective.clip_search is on (objectives/clip_search.py)."""
        return ClipSearch(self) if self.cfg.clip_search and self.block_size > 1 else None

    def block_estimates(self, logits_fn: LogitsFn, x0: Tensor, window: tuple[float, float], *,
                        generator: torch.Generator | None = None) -> Tensor:
        """(B, K) each block's mean per-token loss for one draw of times from `window` (the clip search's
        estimates, objectives/clip_search.py)."""
        B, L = x0.shape
        t = self.block_times(B, L, window, generator=generator, device=x0.device)
        xt = self.corrupt(x0, t, generator=generator)
        per_token = self.integrand(self.two_stream_logits(logits_fn, xt, x0, t), x0, xt, t)
        return per_token.view(B, self.n_blocks(L), self.block_size).mean(-1)

    # --- likelihood ---------------------------------------------------------------------------------------
    @property
    def likelihood_estimator(self) -> str:
        """How `dlm eval ppl` reads this model's bound: its own draws (elbo_samples), exact for block_size 1."""
        return "exact" if self.exact_likelihood else "objective"

    @torch.no_grad()
    def elbo_samples(self, denoiser: Denoiser, x0: Tensor, *, n_t: int = 128,
                     generator: torch.Generator | None = None, attention_mask: Tensor | None = None,
                     clean: Tensor | None = None) -> Tensor:
        """(n_t, B) draws of the bound on -log p(x0) in nats over the unbiased window, one two-stream forward
        each: draw k gives every block a time in the stratum (k + U) / n_t of (0, 1] (eval/likelihood.py:
        stratified_times), so their mean is the bound. block_size = 1: the exact chain rule (window [1, 1], one
        forward, (1, B); n_t and generator unused). attention_mask (B, L): weights of the scored tokens; clean
        (B, L) bool: context positions never noised (score them 0: the bound is then on -log p(scored | clean)).
        A length L that is not a multiple of block_size (a request of the lm-eval adapter) is completed to whole
        blocks by positions that stay masked and unscored: the rest of the last block is marginalized out, as a
        masked denoiser marginalizes the tokens it leaves masked (the block sampler, too, decodes whole blocks).
        denoiser: has .logits (DiffusionLM)."""
        check_batch(x0)
        check_attention_mask(attention_mask, x0)
        check_positive("n_t", n_t)
        self.check_tokens(x0)
        scored = torch.ones_like(x0, dtype=torch.float64) if attention_mask is None else attention_mask.double()
        n, extra = x0.shape[1], -x0.shape[1] % self.block_size
        # token 0 at the added positions of x_0: keys of the last clean block, which no x_t query sees
        x0, scored = F.pad(x0, (0, extra)), F.pad(scored, (0, extra))
        clean = None if clean is None else F.pad(clean, (0, extra))
        added = torch.arange(n + extra, device=x0.device) >= n
        B, L = x0.shape
        if self.exact_likelihood:
            xt, t = torch.full_like(x0, self.mask_id), torch.ones(B, L, device=x0.device)
            xt = xt if clean is None else torch.where(clean, x0, xt)
            logits = self.two_stream_logits(denoiser.logits, xt, x0, t)
            nll = nll_from_logits(logits, x0, exclude=self.mask_id).double() * (xt == self.mask_id)
            return (nll * scored).sum(-1)[None]
        K = self.n_blocks(L)
        times = stratified_times(n_t, B * K, generator=generator, device=x0.device).view(n_t, B, K).float()
        out = []
        for draw in times:
            t = draw.repeat_interleave(self.block_size, dim=1)
            xt = self.corrupt(x0, t, generator=generator)
            xt = xt if clean is None else torch.where(clean, x0, xt)
            xt = xt.masked_fill(added, self.mask_id)
            logits = self.two_stream_logits(denoiser.logits, xt, x0, t)  # clip is not [1, 1] here (b > 1)
            out.append((self.integrand(logits, x0, xt, t).double() * scored).sum(-1))
        return torch.stack(out)

    def conditional_elbo(self, denoiser: Denoiser, x0: Tensor, target_mask: Tensor, *, n_t: int = 128,
                         generator: torch.Generator | None = None, **_: object) -> Tensor:
        """(B,) bound on -log p(x0[target] | x0[~target]) in nats: the context stays clean and unscored. A block
        sees only the blocks before it, so this is the conditional of a continuation (context before the target,
        or in the target's own blocks); context in later blocks is carried but cannot inform it."""
        target = torch.as_tensor(target_mask, dtype=torch.bool, device=x0.device).expand_as(x0)
        return self.elbo_samples(denoiser, x0, n_t=n_t, generator=generator, attention_mask=target.double(),
                                 clean=~target).mean(0)

    def elbo(self, denoiser: Denoiser, x0: Tensor, *, n_t: int = 128, generator: torch.Generator | None = None,
             attention_mask: Tensor | None = None) -> Tensor:
        """(B,) bound on -log p(x0) in nats: the mean of elbo_samples (exact for block_size = 1)."""
        return self.elbo_samples(denoiser, x0, n_t=n_t, generator=generator, attention_mask=attention_mask).mean(0)
