"""Generative perplexity: how likely a reference causal LM finds a model's samples, beside their unigram entropy.

Samples are decoded to text (special tokens dropped), re-tokenized with the reference's tokenizer, prefixed with
its BOS (or EOS) so that every token is scored, and scored in disjoint windows of the reference's length (each
later window conditions on the last token of the previous one). Aggregation is MDLM's token-weighted one
(arXiv 2406.07524; docs/likelihood.md):  gen_ppl = exp( sum_i nll_i / sum_i n_i );  SEDD (arXiv 2310.16834)
averages per-sample perplexities instead, mean_i exp(nll_i / n_i), reported as gen_ppl_sample_mean.
Low gen-PPL with low entropy means repetitive text: read the two together (Zheng et al., arXiv 2409.02908).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from dlm.registry import ConfigError
from dlm.utils.progress import progress


@dataclass
class ReferenceLM:
    """A causal LM that scores text. log_probs: ids (B, W) -> next-token log-probs (B, W, V); max_length: W."""

    name: str
    tokenizer: Any
    log_probs: Callable[[Tensor], Tensor]
    max_length: int
    device: torch.device

    @classmethod
    def load(cls, reference: str, device: str | torch.device | None = None) -> ReferenceLM:
        """A dlm checkpoint dir (must be autoregressive) or any Hugging Face causal LM (name or dir)."""
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if (Path(reference).expanduser() / "model.safetensors").is_file() and _is_dlm(reference):
            return cls._from_dlm(reference, device)
        return cls._from_hf(reference, device)

    @classmethod
    def _from_dlm(cls, path: str, device: torch.device) -> ReferenceLM:
        from dlm.diffusion_lm import DiffusionLM

        model = DiffusionLM.from_pretrained(path, map_location=device).eval()
        # Family policy kept here (2 of 2 sites outside objectives/): a reference must score text exactly.
        if not model.objective.exact_likelihood:
            raise ConfigError(f"reference {path} is a diffusion model; generative perplexity needs an "
                              "autoregressive checkpoint (objective autoregressive) or a HF causal LM")
        return cls(str(path), model.tokenizer, lambda ids: model(ids, None).log_probs, model.config.data.seq_len,
                   device)

    @classmethod
    def _from_hf(cls, name: str, device: torch.device) -> ReferenceLM:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(name)
            model = AutoModelForCausalLM.from_pretrained(name).to(device).eval()
        except Exception as err:  # offline, unknown name, not a causal LM: one line for the user
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(f"cannot load reference LM '{name}': {reason}") from None
        config = model.config
        width = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None) or 1024
        return cls(name, tokenizer, lambda ids: torch.log_softmax(model(input_ids=ids).logits.float(), -1),
                   int(width), device)

    def encode(self, text: str) -> list[int]:
        """[BOS or EOS] + tokens(text): the prefix makes the first token of the text scoreable."""
        prefix = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ([prefix] if prefix is not None else []) + list(ids)

    @torch.no_grad()
    def sequence_nll(self, ids: list[int], batch_size: int = 8) -> tuple[float, int]:
        """(sum of -log p(ids[j] | ids[<j]) over j >= 1 in nats, number of scored tokens), in disjoint windows."""
        width = self.max_length
        windows = [ids[s:s + width] for s in range(0, len(ids) - 1, width - 1)]
        total = 0.0
        for start in range(0, len(windows), batch_size):
            chunk = windows[start:start + batch_size]
            x = torch.zeros(len(chunk), max(map(len, chunk)), dtype=torch.long)
            for row, window in enumerate(chunk):
                x[row, :len(window)] = torch.tensor(window)
            x = x.to(self.device)
            log_probs = self.log_probs(x)[:, :-1]
            nll = -log_probs.gather(-1, x[:, 1:].unsqueeze(-1)).squeeze(-1)
            lengths = torch.tensor([len(w) - 1 for w in chunk], device=x.device)
            scored = torch.arange(x.shape[1] - 1, device=x.device)[None] < lengths[:, None]
            total += float((nll.double() * scored).sum())
        return total, max(len(ids) - 1, 0)


def _is_dlm(path: str) -> bool:
    import json

    config = Path(path).expanduser() / "config.json"
    return config.is_file() and json.loads(config.read_text()).get("model_type") == "dlm"


def unigram_entropy(token_ids: Tensor | Sequence[Sequence[int]] | Sequence[int]) -> float:
    """Entropy (nats) of the empirical unigram distribution of a sequence: -sum_v p_v log p_v, p_v = count_v / L.

    token_ids (L,) -> that sequence's entropy; (B, L) or a list of sequences -> the mean over sequences
    (the per-sample convention of Duo / ReMDM; natural OpenWebText at L = 1024 GPT-2 tokens gives about 5.6).
    """
    if isinstance(token_ids, Tensor):
        rows = [token_ids] if token_ids.dim() == 1 else list(token_ids)
    else:
        rows = [torch.as_tensor(token_ids)] if token_ids and isinstance(token_ids[0], int) else \
            [torch.as_tensor(list(r)) for r in token_ids]
    entropies = []
    for row in rows:
        if row.numel() == 0:
            continue
        p = torch.unique(row, return_counts=True)[1].double() / row.numel()
        entropies.append(float(-(p * p.log()).sum()))
    return sum(entropies) / len(entropies) if entropies else 0.0


def generative_perplexity(texts: Sequence[str], reference: str | ReferenceLM, *, batch_size: int = 8) -> dict:
    """Score `texts` under `reference` (a ReferenceLM, a dlm AR checkpoint dir or a HF causal LM name/dir).

    Returns a flat dict: gen_ppl (token-weighted, MDLM), gen_nll (nats/token), gen_ppl_sample_mean (SEDD),
    num_tokens, num_samples, entropy_reference_tokens (mean per-sample unigram entropy of the re-tokenized
    texts), reference, reference_max_length.
    """
    ref = reference if isinstance(reference, ReferenceLM) else ReferenceLM.load(reference)
    encoded = [ref.encode(text) for text in texts]
    sums, counts = zip(*(ref.sequence_nll(ids, batch_size) for ids in encoded)) if encoded else ((), ())
    tokens = sum(counts)
    if tokens == 0:
        raise ConfigError("generative perplexity got no tokens to score: every sample is empty")
    nll = sum(sums) / tokens
    per_sample = [math.exp(s / c) for s, c in zip(sums, counts) if c > 0]
    return {"gen_ppl": math.exp(nll), "gen_nll": nll, "gen_ppl_sample_mean": sum(per_sample) / len(per_sample),
            "num_tokens": tokens, "num_samples": len(texts),
            "entropy_reference_tokens": unigram_entropy([ids[1:] for ids in encoded]),
            "reference": ref.name, "reference_max_length": ref.max_length}


@dataclass
class Samples:
    """ids (n, length) as sampled, their texts (special tokens dropped), and the sampler that drew them."""

    ids: Tensor
    texts: list[str]
    sampler: str


@torch.no_grad()
def sample_texts(model, *, num_samples: int, length: int, steps: int, sampler: str = "ancestral", seed: int = 0,
                 batch_size: int = 16) -> Samples:
    """Unconditional samples from a DiffusionLM (generate with shape (n, length)); the autoregressive baseline
    decodes left to right from BOS with the 'autoregressive' sampler whatever `sampler` says."""
    from dlm.data.tokenizer import special_tokens
    from dlm.sample import generate

    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    chosen = model.objective.sampler(sampler)  # the AR baseline: always left to right
    sampler = chosen.name
    chunks = []
    context = model.objective.context_tokens
    editable = torch.ones(1, length, dtype=torch.bool)
    editable[:, :context] = False
    plan = chosen.blocks(editable, steps)
    per_batch = sum(block.steps for block in plan) + len(plan)  # on_step calls per batch
    bar = progress(total=per_batch * -(-num_samples // batch_size), unit="step", desc="sampling")
    try:  # the bar is closed before any error line is printed
        for start in range(0, num_samples, batch_size):
            n = min(batch_size, num_samples - start)
            prompt = torch.full((n, context), special_tokens(model.tokenizer).bos, device=device) if context else None
            chunks.append(generate(model, model.process, chosen, steps=steps, shape=(n, length), prompt=prompt,
                                   generator=generator, on_step=lambda i, t, x: bar.update(1 if i else 0)).cpu())
    finally:
        bar.close()
    ids = torch.cat(chunks)
    return Samples(ids, [model.tokenizer.decode(row.tolist(), skip_special_tokens=True) for row in ids], sampler)
