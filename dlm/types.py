"""Plain dataclasses passed between the pieces of dlm. No behaviour lives here."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class Prediction:
    """What a denoiser returns.

    log_probs: (B, L, N) log x_theta(x0 | xt), the mean parameterization (MDLM, UDLM, RADD, AR next-token).
    log_score: (B, L, N) log concrete score log s(xt)_y ~ log p_t(y)/p_t(xt) (SEDD, arXiv 2310.16834).
    Exactly one of them is set by our objectives; a bare Tensor from a user denoiser means log_probs.
    """

    log_probs: Tensor | None = None
    log_score: Tensor | None = None


@dataclass
class LossOutput:
    """loss: scalar to back-propagate (per-token mean of the bound over non-pad tokens).
    nll_sum: summed per-token bound (nats, detached, float64) over the batch; num_tokens: tokens it covers.
    nll_sum / num_tokens is the per-token NLL bound that validation and perplexity report.
    """

    loss: Tensor
    nll_sum: Tensor
    num_tokens: Tensor
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class StepOutput:
    """One reverse step t -> s of a sampler: the new tokens and the prediction that produced them."""

    xs: Tensor
    prediction: Prediction | None = None


@dataclass(frozen=True)
class SpecialTokens:
    """The tokenizer's special ids (dlm.data.special_tokens), None where it has none. bos / eos / pad frame and pad
    the packed rows; mask is the tokenizer's own mask token, for reference only: training builds the absorbing
    process with its own appended mask id (vocab_size; Absorbing(mask_id=...) to choose another), so a checkpoint
    does not depend on whether the tokenizer has one."""

    bos: int | None = None
    eos: int | None = None
    pad: int | None = None
    mask: int | None = None
