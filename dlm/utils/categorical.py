"""Categorical sampling in float64 with optional injected noise: Gumbel-max (V uniforms) or inverse CDF (one).

argmax_k p_k / E_k with E_k = -log U_k ~ Exp(1) equals argmax_k (log p_k + G_k): a sample of normalize(p) for any
non-negative, unnormalized p (MDLM `_sample_categorical`). Float32 noise truncates the Gumbel tail and lowers the
effective temperature (arXiv 2409.02908), so the noise and the ratio are float64. Negative entries (too large a
tau-leaping step) are clipped to zero, as the reference samplers do implicitly.
"""

from __future__ import annotations

import torch
from torch import Tensor

_TINY = 1e-300  # smallest uniform we allow, so -log U stays finite in float64


def uniform_noise(shape: tuple[int, ...], *, generator: torch.Generator | None = None,
                  device: torch.device | str | None = None) -> Tensor:
    """The noise a categorical draw consumes: U(0, 1) in float64, shape (..., N). Record it to replay a draw."""
    return torch.rand(shape, generator=generator, device=device, dtype=torch.float64)


def sample_categorical(probs: Tensor, *, generator: torch.Generator | None = None,
                       noise: Tensor | None = None) -> Tensor:
    """One draw per row of unnormalized probs (..., N) -> LongTensor (...).

    noise: optional uniforms (..., N) from `uniform_noise`; given the same noise the draw is reproduced exactly.
    """
    if noise is None:
        noise = uniform_noise(tuple(probs.shape), generator=generator, device=probs.device)
    exponential = -torch.log(noise.clamp_min(_TINY))
    return (probs.double().clamp_min(0) / exponential).argmax(dim=-1)


def inverse_cdf(weights: Tensor, u: Tensor) -> Tensor:
    """One draw per row of unnormalized weights (n, N) >= 0 from one uniform each, u (n,) float64 -> LongTensor (n,).

    The first k with C_k > u C_N, C the float64 cumulative sum: one V-wide pass instead of Gumbel-max's V uniforms
    and logs. Float64 sums resolve probabilities down to ~1e-16 C_N, so no tail is cut the way float32 noise cuts it.
    Zero-weight entries are never drawn, also when u C_N rounds up to C_N (then the last positive entry is taken).
    """
    cdf = weights.cumsum(-1, dtype=torch.float64)  # (n, N)
    total = cdf[:, -1:].contiguous()
    drawn = torch.searchsorted(cdf, u.unsqueeze(-1).to(cdf.dtype) * total, right=True)
    last = torch.searchsorted(cdf, total, right=False)  # the last positive entry: where C first reaches C_N
    return torch.minimum(drawn, last).squeeze(-1)


def argmax_law(probs: Tensor) -> Tensor:
    """The point mass at the argmax of probs (..., N), float64: temperature 0 as a law (first maximum on ties)."""
    return torch.nn.functional.one_hot(probs.argmax(-1), probs.shape[-1]).double()


def filtered_probs(logits: Tensor, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """softmax(logits / temperature) in float64 with everything outside top-k and the top-p nucleus zeroed."""
    scaled = logits.double() / temperature
    if top_k > 0 and top_k < scaled.shape[-1]:
        kth = scaled.topk(top_k, dim=-1).values[..., -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = torch.softmax(scaled, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs > top_p  # keep the smallest prefix whose mass reaches top_p
        probs = probs.scatter(-1, order, sorted_probs.masked_fill(outside, 0.0))
    return probs
