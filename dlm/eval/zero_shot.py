"""Zero-shot perplexity of a DiffusionLM on a text corpus: the MDLM protocol (arXiv 2406.07524, ALGORITHMS §1.6).

rows -> detokenizer -> model tokenizer (no special tokens) -> blocks of seq_len:
  wrap: every row followed by EOS, concatenated, cut into [BOS] + (seq_len - 2) tokens + [EOS] (remainder dropped);
  pad:  one row per block, [BOS] + row[:seq_len - 2] + [EOS] + pads (pads are not scored);
(or without BOS/EOS when the model was trained with data.add_bos_eos=false), via dlm.data.packing.
Per-token NLL = sum_i bound_i / sum_i tokens_i over every non-pad token of the corpus (the AR baseline scores
all but the first token of each block, exactly); perplexity = exp(NLL), its standard error by the delta method.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from dlm.data.packing import Ragged, pad, wrap
from dlm.data.splits import MODES, encode
from dlm.data.tokenizer import special_tokens
from dlm.diffusion_lm import DiffusionLM
from dlm.eval.corpora import EvalTexts, load_eval_texts
from dlm.eval.estimators import NLLEstimate, TimeSampling, bound_samples, summarize
from dlm.eval.report import ar_ratios, checkpoint_info
from dlm.registry import ConfigError


@dataclass(frozen=True)
class Blocks:
    """ids (N, L) long and mask (N, L) bool, False on pads (scored tokens are mask, minus position 0 for AR)."""

    ids: Tensor
    mask: Tensor

    def fingerprint(self) -> str:
        """sha1 of ids and mask: two models scored the same tokens iff their fingerprints agree."""
        digest = hashlib.sha1(self.ids.numpy().tobytes())
        digest.update(self.mask.numpy().tobytes())
        return digest.hexdigest()


def make_blocks(rows: list[str], tokenizer, seq_len: int, *, mode: str = "wrap", add_bos_eos: bool = True,
                max_blocks: int = 0) -> Blocks:
    """Tokenize and pack rows into (N, seq_len) blocks; max_blocks > 0 keeps the first max_blocks."""
    if mode not in MODES:
        raise ConfigError(f"unknown packing mode '{mode}'; choose one of: {', '.join(MODES)}")
    if tokenizer is None:
        raise ConfigError("the checkpoint has no tokenizer; zero-shot perplexity needs one to encode text")
    specials = special_tokens(tokenizer)
    if max_blocks > 0:  # tokenize only what the first max_blocks blocks need
        docs = _encode_prefix(tokenizer, rows, max_blocks * seq_len) if mode == "wrap" else \
            encode(tokenizer, rows[:max_blocks])
    else:
        docs = encode(tokenizer, rows)
    if mode == "wrap":
        ids = wrap(docs, seq_len, specials.bos, specials.eos, add_bos_eos)
        mask = torch.ones_like(ids, dtype=torch.bool)
    else:
        ids, mask = pad(docs, seq_len, specials.bos, specials.eos, specials.pad, add_bos_eos)
    if max_blocks > 0:
        ids, mask = ids[:max_blocks], mask[:max_blocks]
    if len(ids) == 0:
        raise ConfigError(f"the corpus ({len(docs.tokens)} tokens) fills no block of {seq_len} tokens; "
                          "use a smaller --seq-len")
    return Blocks(ids, mask)


def _encode_prefix(tokenizer, rows: list[str], tokens: int, chunk: int = 1000) -> Ragged:
    """The shortest run of leading rows, encoded, whose stream (each row + EOS) holds at least `tokens` tokens."""
    parts, total = [], 0
    for start in range(0, len(rows), chunk):
        parts.append(encode(tokenizer, rows[start:start + chunk]))
        total += int(parts[-1].lengths.sum()) + len(parts[-1].lengths)
        if total >= tokens:
            break
    return Ragged.concat(parts)


def time_sampling(model: DiffusionLM, estimator: str, n_t: int) -> TimeSampling:
    """The estimator settings for this model: exact for AR; mdlm uses the objective's time_sampler and eps."""
    if model.objective.exact_likelihood:
        return TimeSampling("exact", 1, "none", 0.0)
    cfg = model.objective.cfg
    if estimator == "many":
        return TimeSampling("many", n_t, "stratified_per_sequence", 1e-6)
    return TimeSampling(estimator, n_t, cfg.time_sampler, cfg.sampling_eps)


def scored_tokens(model: DiffusionLM, mask: Tensor) -> Tensor:
    """(B,) tokens each block contributes: every non-pad token, minus the unscored first one for AR."""
    return mask[:, model.objective.context_tokens:].sum(-1)


@torch.no_grad()
def block_samples(model: DiffusionLM, ids: Tensor, mask: Tensor, sampling: TimeSampling, *,
                  generator: torch.Generator | None = None) -> Tensor:
    """(K, B) per-block bound draws (nats); exact NLL (K = 1) for the autoregressive baseline."""
    if sampling.estimator == "exact":
        return model.elbo(ids, attention_mask=mask).unsqueeze(0)
    return bound_samples(model, model.process, ids, mask.float(), sampling, generator=generator)


@torch.no_grad()
def evaluate_blocks(model: DiffusionLM, blocks: Blocks, sampling: TimeSampling, *, batch_size: int = 16,
                    seed: int = 0, progress: bool = True, desc: str = "") -> NLLEstimate:
    """Per-token NLL bound of the blocks with its Monte Carlo standard error; one generator seeded by `seed`."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    samples, tokens = [], []
    starts = range(0, len(blocks.ids), batch_size)
    for start in tqdm(starts, desc=desc or "ppl", unit="batch", disable=not progress, leave=False):
        ids = blocks.ids[start:start + batch_size].to(device)
        mask = blocks.mask[start:start + batch_size].to(device)
        samples.append(block_samples(model, ids, mask, sampling, generator=generator).cpu())
        tokens.append(scored_tokens(model, mask).cpu())
    return summarize(torch.cat(samples, dim=1), torch.cat(tokens), sampling.estimator)


def zero_shot_perplexity(model: DiffusionLM, texts: EvalTexts, *, estimator: str = "mdlm", n_t: int = 1,
                         batch_size: int = 16, seq_len: int = 0, mode: str = "", max_blocks: int = 0,
                         seed: int = 0, progress: bool = True) -> dict:
    """Flat dict for one model on one corpus: the estimate (nll, ppl, bits, their se, tokens) and every setting.

    seq_len / mode default to the model's training data config (model.config.data.seq_len / .mode).
    """
    model.check_config()
    data = model.config.data
    seq_len, mode = seq_len or data.seq_len, mode or data.mode
    if seq_len > model.config.model.max_len:
        raise ConfigError(f"seq_len {seq_len} exceeds the model's max_len {model.config.model.max_len}")
    blocks = make_blocks(texts.rows, model.tokenizer, seq_len, mode=mode, add_bos_eos=data.add_bos_eos,
                         max_blocks=max_blocks)
    sampling = time_sampling(model, estimator, n_t)
    estimate = evaluate_blocks(model.eval(), blocks, sampling, batch_size=batch_size, seed=seed, progress=progress,
                               desc=texts.name)
    return {"dataset": texts.name, "split": texts.split, "source": texts.source, "detokenizer": texts.detokenizer,
            "num_rows": len(texts.rows), **estimate.as_dict(), "estimator": sampling.estimator,
            "n_t": sampling.n_t, "time_sampler": sampling.time_sampler, "eps": sampling.eps, "seq_len": seq_len,
            "mode": mode, "add_bos_eos": data.add_bos_eos, "max_blocks": max_blocks, "batch_size": batch_size,
            "seed": seed, "blocks_sha1": blocks.fingerprint()}


def evaluate_checkpoints(checkpoints: list[str], datasets: list[str], *, data_dir: str = "", estimator: str = "mdlm",
                         n_t: int = 1, batch_size: int = 16, seq_len: int = 0, mode: str = "", max_blocks: int = 0,
                         seed: int = 0, device: str = "", progress: bool = True) -> dict:
    """Every checkpoint on every dataset -> {'rows': [flat dict per (checkpoint, dataset)], 'ratios': [...]}.

    Rows carry checkpoint_info (path, weights sha256, objective); ratios compare each diffusion row with the AR
    checkpoint scored on the same blocks (report.ar_ratios).
    """
    TimeSampling(estimator, n_t)  # fail on a bad estimator / n_t before loading anything
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    models = []
    for path in checkpoints:
        model = DiffusionLM.from_pretrained(path, map_location=device).eval()
        models.append((model, checkpoint_info(path, model)))
    corpora = [load_eval_texts(spec, data_dir=data_dir, data_cfg=models[0][0].config.data) for spec in datasets]
    rows = []
    for texts in corpora:  # every corpus is loaded first, so a bad name fails before any evaluation
        for model, info in models:
            result = zero_shot_perplexity(model, texts, estimator=estimator, n_t=n_t, batch_size=batch_size,
                                          seq_len=seq_len, mode=mode, max_blocks=max_blocks, seed=seed,
                                          progress=progress)
            rows.append({**info, **result})
    return {"rows": rows, "ratios": ar_ratios(rows)}
