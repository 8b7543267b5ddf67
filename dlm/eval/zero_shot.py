"""Zero-shot perplexity of a DiffusionLM on a text corpus: the MDLM protocol (arXiv 2406.07524; docs/likelihood.md).

rows -> detokenizer -> model tokenizer (no special tokens) -> blocks of seq_len:
  wrap: every row followed by EOS, concatenated, cut into [BOS] + (seq_len - 2) tokens + [EOS] (remainder dropped);
  pad:  one row per block, [BOS] + row[:seq_len - 2] + [EOS] + pads (pads are not scored);
(or without BOS/EOS when the model was trained with data.add_bos_eos=false), via dlm.data.packing.
Scored tokens are the same for every family, so that a diffusion/AR ratio divides NLLs of the same tokens: the
stream tokens (text and the EOS after each row) at positions 1.. of each block; the block's own BOS at 0 and, in
wrap mode, its EOS at L-1 are deterministic (a free credit that MDLM's protocol counts for diffusion models only)
and are clean context; so is position 0 without BOS/EOS, which an AR model cannot predict. Diffusion models give the
conditional bound -log p(scored | context) with the context never noised (conditional_elbo's construction; pads stay
noised as in training, unscored), the AR baseline its exact -sum log p(x^l | x^{<l}) over the scored l.
Per-token NLL = sum_i bound_i / sum_i tokens_i; perplexity = exp(NLL), its standard error by the delta method.
Tokens the tokenizer maps to <unk> are counted (oov_rate); exclude_oov makes them context instead of scored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from dlm.data.packing import Ragged, pad, wrap
from dlm.data.splits import MODES, encode
from dlm.data.tokenizer import special_tokens
from dlm.diffusion_lm import DiffusionLM
from dlm.eval.corpora import EvalTexts, TextFormat, load_eval_texts
from dlm.eval.device import resolve_device
from dlm.eval.estimators import NLLEstimate, TimeSampling, bound_samples, summarize
from dlm.eval.oov import OOV_WARN_RATE, count_oov, oov_id, warn_oov
from dlm.eval.report import ar_ratios, checkpoint_info, corpus_summaries
from dlm.registry import ConfigError
from dlm.utils.progress import progress as progress_bar


@dataclass(frozen=True)
class Blocks:
    """ids (N, L) long; mask (N, L) bool, False on pads; scored (N, L) bool, the tokens that count (the same for
    every family); stream (N, L) bool, the corpus tokens that could count (scored before excluding <unk>);
    rows: corpus rows with at least one token in the blocks."""

    ids: Tensor
    mask: Tensor
    scored: Tensor
    stream: Tensor
    rows: int

    @property
    def clean(self) -> Tensor:
        """(N, L) bool: unscored non-pad positions, the context every model sees unnoised."""
        return self.mask & ~self.scored

    def fingerprint(self) -> str:
        """sha1 of ids, mask and scored: two models scored the same tokens iff their fingerprints agree."""
        digest = hashlib.sha1(self.ids.numpy().tobytes())
        digest.update(self.mask.numpy().tobytes())
        digest.update(self.scored.numpy().tobytes())
        return digest.hexdigest()


def scored_positions(mode: str, add_bos_eos: bool, exclude_oov: bool) -> str:
    """What counts, in words, for the results file."""
    where = ("1..L-2 (BOS at 0 and the block's EOS at L-1 are context)" if mode == "wrap" and add_bos_eos else
             "1.. up to the last non-pad token (BOS at 0 is context)" if add_bos_eos else
             "1.. (position 0 is context)")
    return f"stream tokens at positions {where}" + ("; <unk> tokens excluded (context)" if exclude_oov else "")


def make_blocks(rows: list[str], tokenizer, seq_len: int, *, mode: str = "wrap", add_bos_eos: bool = True,
                max_blocks: int = 0, exclude_oov: bool = False) -> Blocks:
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
    stream = mask.clone()
    stream[:, 0] = False
    if mode == "wrap" and add_bos_eos:
        stream[:, -1] = False
    unk = oov_id(tokenizer)
    scored = stream & (ids != unk) if exclude_oov and unk is not None else stream
    return Blocks(ids, mask, scored, stream, _rows_in(docs, len(ids), seq_len, mode, add_bos_eos))


def _rows_in(docs: Ragged, blocks: int, seq_len: int, mode: str, add_bos_eos: bool) -> int:
    """Rows with a token in the first `blocks` blocks: one per block in pad mode; in wrap mode the rows whose
    stream span (tokens + EOS) starts before the end of the kept blocks."""
    if mode != "wrap":
        return blocks
    used = blocks * (seq_len - 2 if add_bos_eos else seq_len)
    starts = np.cumsum(docs.lengths + 1) - (docs.lengths + 1)
    return int((starts < used).sum())


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
    """The estimator settings for this model: the objective's own estimator where it has one (exact for AR), else
    `estimator`; mdlm uses the objective's time_sampler and eps."""
    own = model.objective.likelihood_estimator
    if estimator == "exact" and own != "exact":
        raise ConfigError("estimator 'exact' needs a model whose likelihood is exact (the autoregressive baseline)")
    estimator = own or estimator
    if estimator == "exact":
        return TimeSampling("exact", 1, "none", 0.0)
    cfg = model.objective.cfg
    if estimator in ("many", "objective"):  # n_t strata of (0, 1] per sequence (objective: per block)
        return TimeSampling(estimator, n_t, "stratified_per_sequence", 1e-6)
    return TimeSampling(estimator, n_t, cfg.time_sampler, cfg.sampling_eps)


@torch.no_grad()
def block_samples(model: DiffusionLM, ids: Tensor, scored: Tensor, clean: Tensor, sampling: TimeSampling, *,
                  generator: torch.Generator | None = None) -> Tensor:
    """(K, B) per-block draws (nats) of the bound on -log p(scored | clean); exact NLL (K = 1) for the AR baseline."""
    return bound_samples(model, model.process, ids, scored.float(), sampling, generator=generator, clean=clean)


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
    for start in progress_bar(starts, desc=desc or "ppl", unit="batch", disable=not progress, leave=False):
        ids, scored, clean = (x[start:start + batch_size].to(device) for x in (blocks.ids, blocks.scored, blocks.clean))
        samples.append(block_samples(model, ids, scored, clean, sampling, generator=generator).cpu())
        tokens.append(scored.sum(-1).cpu())
    return summarize(torch.cat(samples, dim=1), torch.cat(tokens), sampling.strategy)


def zero_shot_perplexity(model: DiffusionLM, texts: EvalTexts, *, estimator: str = "mdlm", n_t: int = 1,
                         batch_size: int = 16, seq_len: int = 0, mode: str = "", max_blocks: int = 0,
                         seed: int = 0, progress: bool = True, exclude_oov: bool = False) -> dict:
    """Flat dict for one model on one corpus: the estimate (nll, ppl, bits, their se, tokens), the OOV count and
    every setting. seq_len / mode default to the model's training data config (model.config.data.seq_len / .mode).
    exclude_oov: <unk> tokens become context instead of scored.
    """
    model.check_config()
    data = model.config.data
    seq_len, mode = seq_len or data.seq_len, mode or data.mode
    if seq_len > model.config.model.max_len:
        raise ConfigError(f"seq_len {seq_len} exceeds the model's max_len {model.config.model.max_len}")
    blocks = make_blocks(texts.rows, model.tokenizer, seq_len, mode=mode, add_bos_eos=data.add_bos_eos,
                         max_blocks=max_blocks, exclude_oov=exclude_oov)
    oov, stream = count_oov(blocks.ids, blocks.stream, oov_id(model.tokenizer)), int(blocks.stream.sum())
    sampling = time_sampling(model, estimator, n_t)
    estimate = evaluate_blocks(model.eval(), blocks, sampling, batch_size=batch_size, seed=seed, progress=progress,
                               desc=texts.name)
    return {"dataset": texts.name, "split": texts.split, "source": texts.source, "detokenizer": texts.detokenizer,
            **texts.reading, "num_rows": blocks.rows, "num_rows_loaded": len(texts.rows), **estimate.as_dict(),
            "scored_positions": scored_positions(mode, data.add_bos_eos, exclude_oov), "oov_tokens": oov,
            "oov_stream_tokens": stream, "oov_rate": oov / max(stream, 1), "exclude_oov": exclude_oov,
            "estimator": sampling.estimator, "n_t": sampling.n_t, "time_sampler": sampling.time_sampler,
            "eps": sampling.eps, "seq_len": seq_len, "mode": mode, "add_bos_eos": data.add_bos_eos,
            "max_blocks": max_blocks, "batch_size": batch_size, "seed": seed, "blocks_sha1": blocks.fingerprint()}


def evaluate_checkpoints(checkpoints: list[str], datasets: list[str], *, data_dir: str = "", estimator: str = "mdlm",
                         n_t: int = 1, batch_size: int = 16, seq_len: int = 0, mode: str = "", max_blocks: int = 0,
                         seed: int = 0, device: str = "", progress: bool = True, exclude_oov: bool = False,
                         oov_warn: float = OOV_WARN_RATE, text_format: TextFormat | None = None) -> dict:
    """Every checkpoint on every dataset -> {'rows': [flat dict per (checkpoint, dataset)], 'ratios': [...],
    'corpora': [one summary per dataset and token set], 'runtime': {device, cpu_threads}}.

    Rows carry checkpoint_info (path, weights sha256, objective); ratios compare each diffusion row with the AR
    checkpoint scored on the same tokens (report.ar_ratios). text_format: how local files are read (corpora).
    """
    TimeSampling(estimator, n_t)  # fail on a bad estimator / n_t before loading anything
    device = resolve_device(device)
    runtime = {"device": str(device), "cpu_threads": torch.get_num_threads()}  # set by the caller, never here
    models = []
    for path in checkpoints:
        model = DiffusionLM.from_pretrained(path, map_location=device).eval()
        models.append((model, checkpoint_info(path, model)))
    corpora = [load_eval_texts(spec, data_dir=data_dir, data_cfg=models[0][0].config.data, text_format=text_format)
               for spec in datasets]
    rows = []
    for texts in corpora:  # every corpus is loaded first, so a bad name fails before any evaluation
        for model, info in models:
            result = zero_shot_perplexity(model, texts, estimator=estimator, n_t=n_t, batch_size=batch_size,
                                          seq_len=seq_len, mode=mode, max_blocks=max_blocks, seed=seed,
                                          progress=progress, exclude_oov=exclude_oov)
            rows.append({**info, **result})
    summaries = corpus_summaries(rows)
    for corpus in summaries if not exclude_oov else []:
        warn_oov(f"{corpus['dataset']} ({corpus['split']})", corpus["oov_tokens"], corpus["oov_stream_tokens"],
                 oov_warn)
    return {"rows": rows, "ratios": ar_ratios(rows), "corpora": summaries, "runtime": runtime}
