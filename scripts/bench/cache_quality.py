"""The quality side of scripts/bench/cache.py: held-out infilling rows and paired statistics of sampled texts.

Paired: every policy draws sample i with the same per-row generator (seed i), so cached and uncached samples share
their noise and a policy's effect is read from per-sample differences d_i, with standard error sd(d) / sqrt(n).
gen-PPL is MDLM's token-weighted exp(sum_i nll_i / sum_i n_i) (dlm/eval/generative.py); its log is a ratio
estimator whose per-sample linearisation (nll_i - g n_i) / mean(n) gives both its standard error and the paired
difference between two policies.
"""

from __future__ import annotations

import math
import random

import torch

from dlm.data.splits import split_documents
from dlm.eval.generative import unigram_entropy


def held_out_text(model) -> str:
    """The validation documents of the model's own training config (never seen in training), joined."""
    return "\n\n".join(split_documents(model.config.data)[1])


def infill_rows(model, count: int, length: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens (count, length), span (count, length) bool): windows of held-out text centred on a line of >= 24
    characters, the middle half of that line masked (span True: the positions to infill)."""
    text = held_out_text(model)
    starts, offset = [], 0
    for line in text.split("\n"):
        if len(line) >= 24 and offset >= length and offset + length < len(text):
            starts.append((offset, len(line)))
        offset += len(line) + 1
    picks = random.Random(seed).sample(starts, count)
    tokens, spans = [], []
    for begin, size in picks:
        left = begin + size // 2 - length // 2  # the line's centre at the window's centre
        ids = model.tokenizer(text[left:left + length], add_special_tokens=False)["input_ids"][:length]
        span = torch.zeros(length, dtype=torch.bool)
        a = begin - left + size // 4
        span[a:a + size // 2] = True
        tokens.append(torch.tensor(ids))
        spans.append(span)
    return torch.stack(tokens), torch.stack(spans)


def held_out_anchor(model, reference, count: int, length: int) -> dict[str, float]:
    """gen-PPL and unigram entropy of `count` held-out windows of `length` tokens: what real text scores."""
    ids = model.tokenizer(held_out_text(model), add_special_tokens=False)["input_ids"]
    stride = max(length, (len(ids) - length) // count)
    windows = torch.tensor([ids[i * stride:i * stride + length] for i in range(count)])
    stats = sample_stats(model, reference, windows)
    real = quality(stats, stats)
    return {"gen_ppl": real["gen_ppl"], "gen_ppl_se": real["gen_ppl_se"], "entropy": real["entropy"],
            "entropy_se": real["entropy_se"], "windows": count}


def sample_stats(model, reference, ids: torch.Tensor) -> dict[str, list[float]]:
    """Per sample: nll (nats, summed) and n (scored tokens) under the reference, and unigram entropy (nats)."""
    texts = model.tokenizer.batch_decode(ids.tolist(), skip_special_tokens=True)
    nll, n = zip(*(reference.sequence_nll(reference.encode(text)) for text in texts))
    return {"nll": list(nll), "n": list(n), "entropy": [unigram_entropy(row) for row in ids]}


def _log_ppl_terms(stats: dict) -> tuple[float, list[float]]:
    """(log gen-PPL g, per-sample linearised terms whose mean is 0 and whose spread gives g's error)."""
    g = sum(stats["nll"]) / sum(stats["n"])
    mean_n = sum(stats["n"]) / len(stats["n"])
    return g, [(s - g * c) / mean_n for s, c in zip(stats["nll"], stats["n"])]


def _se(values: list[float]) -> float:
    n = len(values)
    if n < 2:
        return float("nan")
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)


def quality(stats: dict, base: dict) -> dict[str, float]:
    """gen-PPL and entropy of one policy's samples with standard errors, and relative to the paired uncached ones:
    rel_gen_ppl = ppl / ppl_none - 1 and rel_entropy = H / H_none - 1, each with its paired standard error."""
    g, terms = _log_ppl_terms(stats)
    g0, terms0 = _log_ppl_terms(base)
    h, h0 = stats["entropy"], base["entropy"]
    mean_h0 = sum(h0) / len(h0)
    return {"gen_ppl": math.exp(g), "gen_ppl_se": math.exp(g) * _se(terms),
            "entropy": sum(h) / len(h), "entropy_se": _se(h),
            "rel_gen_ppl": math.exp(g - g0) - 1, "rel_gen_ppl_se": math.exp(g - g0) * _se(
                [a - b for a, b in zip(terms, terms0)]),
            "rel_entropy": sum(h) / len(h) / mean_h0 - 1, "rel_entropy_se": _se(
                [(a - b) / mean_h0 for a, b in zip(h, h0)]),
            "samples": len(h)}


def infill_accuracy(ids: torch.Tensor, truth: torch.Tensor, span: torch.Tensor) -> dict[str, float]:
    """Exact-character accuracy over the masked spans: the mean over rows of each row's fraction right, with its
    standard error."""
    per_row = [float((ids[b][span[b]] == truth[b][span[b]]).double().mean()) for b in range(ids.shape[0])]
    return {"infill_accuracy": sum(per_row) / len(per_row), "infill_accuracy_se": _se(per_row),
            "infill_rows": len(per_row)}
