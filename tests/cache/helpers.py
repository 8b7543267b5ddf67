"""Tiny random models and a token counter shared by the cache tests."""

from __future__ import annotations

import torch

import dlm

TINY = ["model.d_model=32", "model.n_layers=2", "model.n_heads=2", "model.max_len=64"]
V = 11


def tiny_model(*overrides: str, seed: int = 0, sharpen: float = 1.0) -> dlm.DiffusionLM:
    """A tiny random DiffusionLM (masked ELBO by default), in eval mode. sharpen > 1 scales every weight matrix:
    at the std-0.02 init, attention is nearly uniform and greedy tokens barely depend on context, so a test of what
    context changes (padding, stale keys) needs a sharper model to be able to fail."""
    torch.manual_seed(seed)
    model = dlm.DiffusionLM.from_config(dlm.load_config(None, [*TINY, *overrides]), vocab_size=V).eval()
    with torch.no_grad():
        for weight in model.parameters():
            if weight.dim() == 2:
                weight.mul_(sharpen)
    return model


def tiny_ar(seed: int = 0, sharpen: float = 1.0) -> dlm.DiffusionLM:
    return tiny_model("objective.name=autoregressive", "process.name=none", seed=seed, sharpen=sharpen)


class TokenCounter:
    """Counts the token positions the backbone runs on (queries), through a forward pre-hook."""

    def __init__(self, model: dlm.DiffusionLM):
        self.tokens = 0
        self.handle = model.backbone.register_forward_pre_hook(self._count)

    def _count(self, module, args):
        self.tokens += args[0].numel()

    def close(self) -> int:
        self.handle.remove()
        return self.tokens


def prompt_batch(lengths: list[int], new: list[int], seed: int = 0):
    """Rows of prompt_b (random ids, lengths[b]) + new[b] positions to generate, right-padded:
    -> tokens (B, L), prompt_mask (B, L), attention_mask (B, L)."""
    gen = torch.Generator().manual_seed(seed)
    total = [p + n for p, n in zip(lengths, new)]
    L = max(total)
    tokens = torch.randint(0, V, (len(lengths), L), generator=gen)
    columns = torch.arange(L)
    prompt_mask = columns[None] < torch.tensor(lengths)[:, None]
    attention_mask = columns[None] < torch.tensor(total)[:, None]
    return tokens, prompt_mask, attention_mask
