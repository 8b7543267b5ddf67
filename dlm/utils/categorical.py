"""Categorical sampling in float64 with optional injected noise: Gumbel-max (V uniforms) or inverse CDF (one).

argmax_k p_k / E_k with E_k = -log U_k ~ Exp(1) equals argmax_k (log p_k + G_k): a sample of normalize(p) for any
non-negative, unnormalized p (MDLM `_sample_categorical`). Float32 noise truncates the Gumbel tail and lowers the
effective temperature (arXiv 2409.02908), so the noise and the ratio are float64. Negative entries (too large a
tau-leaping step) are clipped to zero, as the reference samplers do implicitly.
"""

from __future__ import annotations

import numpy as np
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


BLOCK = 512  # entries per block of the two-level inverse CDF


def inverse_cdf(weights: Tensor, u: Tensor) -> Tensor:
    """One draw per row of unnormalized weights (n, N) >= 0 from one uniform each, u (n,) float64 -> LongTensor (n,).

    The first k with C_k > u C_N, C the cumulative sum, found in two levels: float64 sums of BLOCK-entry blocks
    (a vectorized reduction, no float64 copy of the row), their cumulative sum, then a float64 cumulative sum
    inside the one block the uniform falls in. One pass over the row instead of Gumbel-max's V uniforms and logs;
    float64 sums resolve probabilities down to ~1e-16 C_N, so no tail is cut the way float32 noise cuts it. Zero
    entries are never drawn, also when rounding puts u C_N at or past a total (then the last positive one is).
    """
    weights = weights.contiguous()
    n, width = weights.shape
    full = width // BLOCK * BLOCK
    blocks = weights[:, :full].view(n, -1, BLOCK).sum(-1, dtype=torch.float64)  # (n, full / BLOCK)
    if full < width:
        blocks = torch.cat([blocks, weights[:, full:].sum(-1, keepdim=True, dtype=torch.float64)], -1)
    cdf = blocks.cumsum(-1)  # (n, nb)
    target = u.unsqueeze(-1).to(cdf.dtype) * cdf[:, -1:]
    block = _first_above(cdf, target)  # (n, 1)
    before = torch.where(block > 0, cdf.gather(-1, (block - 1).clamp_min(0)), 0.0)
    offsets = block * BLOCK + torch.arange(min(BLOCK, width), device=weights.device)  # (n, min(BLOCK, N))
    inner = weights.gather(-1, offsets.clamp_max(width - 1)).double().masked_fill_(offsets >= width, 0.0)
    return (block * BLOCK + _first_above(inner.cumsum(-1), target - before)).squeeze(-1)


def _first_above(cdf: Tensor, target: Tensor) -> Tensor:
    """First index k with cdf_k > target (n, 1), capped at the last positive step: where cdf first reaches its end."""
    last = torch.searchsorted(cdf, cdf[:, -1:].contiguous(), right=False)
    return torch.minimum(torch.searchsorted(cdf, target.contiguous(), right=True), last)


def argmax_law(probs: Tensor) -> Tensor:
    """The point mass at the argmax of probs (..., N), float64: temperature 0 as a law (first maximum on ties)."""
    return torch.nn.functional.one_hot(probs.argmax(-1), probs.shape[-1]).double()


NUCLEI = ("reach", "strict")


def filtered_probs(logits: Tensor, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                   nucleus: str = "reach") -> Tensor:
    """softmax(logits / temperature) in float64 with everything outside top-k and the top-p nucleus zeroed.
    nucleus: which top-p set (tokens by decreasing probability p_(1) >= p_(2) >= ...):
        reach   the smallest prefix whose mass reaches top_p (Holtzman et al., arXiv 1904.09751; the token that
                crosses top_p is kept)
        strict  the largest prefix whose mass stays <= top_p, at least p_(1) (the BD3LM reference's
                `_nucleus_sample`, arXiv 2503.09573 code: the token that crosses top_p is dropped)."""
    scaled = logits.double() if temperature == 1 else logits.double() / temperature  # x / 1 == x
    if top_k > 0 and top_k < scaled.shape[-1]:
        kth = scaled.topk(top_k, dim=-1).values[..., -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = torch.softmax(scaled, dim=-1)
    return nucleus_probs(probs, top_p, nucleus) if top_p < 1.0 else probs


def nucleus_probs(probs: Tensor, top_p: float, nucleus: str = "reach") -> Tensor:
    """probs (..., N) float64 with every token outside the top-p set zeroed (filtered_probs' `nucleus`).

    The definition is nucleus_by_sort's: sort the row, mark the tokens whose running sum in that order passes
    top_p, zero them. The result equals it bit for bit, from the sorted VALUES alone (numpy's sort on the CPU: about
    half of torch.sort's time, which also orders the indices): they and their running sums are the sort's whatever
    it does with ties. Where the kept tokens are a prefix ending at a value strictly above the next one (no tie
    straddles the boundary, so the sort's order among equal values cannot matter), the set is {p >= the last kept
    value}; the other rows (a tie across the boundary, NaN) take nucleus_by_sort."""
    rows = probs.reshape(-1, probs.shape[-1])
    width = rows.shape[-1]
    values = _sorted_values(rows)  # (n, N), decreasing
    outside = _outside(values, top_p, nucleus)
    kept = (~outside).sum(-1, keepdim=True)  # (n, 1), >= 1
    prefix = (~outside == (torch.arange(width, device=rows.device) < kept)).all(-1)
    last, after = values.gather(-1, kept - 1), values.gather(-1, kept.clamp_max(width - 1))
    decided = prefix & ((kept == width) | (after < last)).squeeze(-1) & ~values[:, 0].isnan()
    out = rows.masked_fill(rows < last, 0.0)
    if not bool(decided.all()):
        out[~decided] = nucleus_by_sort(rows[~decided], top_p, nucleus)
    return out.view(probs.shape)


def nucleus_by_sort(probs: Tensor, top_p: float, nucleus: str = "reach") -> Tensor:
    """The top-p set by a full sort of each row (..., N): the definition nucleus_probs computes faster."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    return probs.scatter(-1, order, sorted_probs.masked_fill(_outside(sorted_probs, top_p, nucleus), 0.0))


def _outside(sorted_probs: Tensor, top_p: float, nucleus: str) -> Tensor:
    """bool (..., N): the tokens of a row sorted by decreasing probability that fall outside the top-p set."""
    before = sorted_probs.cumsum(-1) - sorted_probs  # the mass of the tokens ahead of each
    outside = before > top_p if nucleus == "reach" else before + sorted_probs > top_p
    outside[..., 0] = False
    return outside


def _sorted_values(rows: Tensor) -> Tensor:
    """Each row of rows (n, N) in decreasing order, values only (numpy's sort on the CPU, NaN first as torch's)."""
    if rows.device.type != "cpu":
        return rows.sort(dim=-1, descending=True).values
    return torch.from_numpy(np.ascontiguousarray(np.sort(rows.detach().numpy(), axis=-1)[:, ::-1]))
