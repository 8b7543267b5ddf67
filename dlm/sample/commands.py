"""`dlm sample` and `dlm infill`: typed command functions (the CLI derives flags from the signatures).

Both load a checkpoint with dlm.DiffusionLM.from_pretrained, run dlm.sample.generate with a progress bar, print the
decoded texts, and with `out` write one JSON line per sample holding its text, token ids and every setting.
An autoregressive checkpoint always uses the "autoregressive" sampler, started from its BOS token (with its exact
KV cache). cache: a registered cache policy for masked models (dkv_decode, dkv_greedy, prefix, dual; dlm/cache/).
cfg_scale: classifier-free guidance (dlm/guidance/cfg.py) on the class `label` of a class-conditional checkpoint,
or, for infilling, on the known text (unsupervised CFG: the unconditional branch sees it masked).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from dlm.registry import ConfigError
from dlm.sample.nfe import NFECounter
from dlm.utils.progress import progress
from dlm.validation import check_positive


@dataclass(frozen=True)
class SampleSettings:
    """Every setting of one `dlm sample` / `dlm infill` run; each JSONL record carries them (as_dict).
    length: tokens per sample (for infill, the template's); text: the infill template ("" for sample)."""

    checkpoint: str
    sampler: str = "ancestral"
    steps: int = 128
    num_samples: int = 4
    length: int = 128
    block_size: int = 0
    seed: int = 0
    temperature: float = 1.0
    top_p: float = 1.0
    show_steps: bool = False
    out: str = ""
    cache: str = ""
    cfg_scale: float = 0.0
    label: int = -1
    text: str = ""
    allow_unk: bool = False
    stop_at_eos: bool = False
    prompts: str = ""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def sample_command(checkpoint: str, sampler: str = "ancestral", steps: int = 128, num_samples: int = 4,
                   length: int = 128, block_size: int = 0, seed: int = 0, temperature: float = 1.0,
                   top_p: float = 1.0, show_steps: bool = False, out: str = "", cache: str = "",
                   cfg_scale: float = 0.0, label: int = -1, corpus_words: bool = False,
                   stop_at_eos: bool = False, prompts: str = "") -> list[str]:
    """Unconditional samples from a checkpoint, printed and optionally written as JSON lines; with --prompts, one
    completion per prompt of a fine-tuned checkpoint.

    Args:
        checkpoint: a dlm checkpoint dir (e.g. runs/x/final).
        sampler: ancestral, ancestral_cache, analytic, euler, tau_leaping, theta_trapezoidal, theta_rk2,
            confidence, entropy_bounded, first_hitting or remdm, options after a colon (confidence:threshold=0.9,
            entropy_bounded:gamma=0.1, remdm:schedule=loop, ancestral:nucleus=strict); an autoregressive checkpoint
            always samples left to right. A block diffusion checkpoint runs the named sampler inside each block;
            "block:" also takes the block sampler's own options (tail_entropy, tail_length, window), e.g.
            block:inner=first_hitting,tail_entropy=4. NFE and tokens/s are printed.
        steps: reverse steps in all (for most samplers one denoiser call each); with --block-size they are split
            evenly across the blocks, so steps must be a multiple of the number of blocks; per block on a block
            diffusion checkpoint. Unused by confidence with a threshold or factor, entropy_bounded and
            first_hitting, which run each block until it is decoded.
        num_samples: how many sequences.
        length: tokens per sequence, at most the model's max_len; a block diffusion checkpoint goes further with a
            sliding window (each block sees the last max_len tokens: approximate past max_len).
        block_size: > 0 decodes semi-autoregressively in blocks of this many tokens (masked models).
        seed: seed of every random draw.
        temperature: x0 temperature (0 = argmax).
        top_p: nucleus filtering of x0 (1 = off).
        show_steps: print how sample 0 fills in, one line per changing step.
        out: a .jsonl file for the samples, their token ids and these settings.
        cache: dkv_decode, dkv_greedy, prefix or dual (masked models), options after a colon
            (dkv_decode:refresh_every=8).
        cfg_scale: classifier-free guidance scale on `label` (0: plain conditional sampling).
        label: >= 0: the class of a class-conditional checkpoint.
        corpus_words: also print the fraction of the samples' whitespace-separated words that occur in the
            checkpoint's training corpus (dlm/eval/corpus_words.py).
        stop_at_eos: variable length (block diffusion checkpoints): each sample ends at the first EOS it
            generates; the rest is padding and is not printed.
        prompts: a JSONL file of {"prompt": ...} objects (a `dlm finetune` data file works: responses are
            ignored) for a checkpoint trained with `dlm finetune`: each prompt is left-padded to the checkpoint's
            prompt width, as in training, the rest of the row (data.seq_len) is generated, and each completion
            stops at its first EOS (docs/posttraining.md#sft). --num-samples and --length are then unused.
    """
    if prompts:
        return _prompted(_load(checkpoint), SampleSettings(
            checkpoint, sampler=sampler, steps=steps, block_size=block_size, seed=seed, temperature=temperature,
            top_p=top_p, show_steps=show_steps, out=out, cache=cache, prompts=prompts))
    settings = SampleSettings(checkpoint, sampler=sampler, steps=steps, num_samples=num_samples, length=length,
                              block_size=block_size, seed=seed, temperature=temperature, top_p=top_p,
                              show_steps=show_steps, out=out, cache=cache, cfg_scale=cfg_scale, label=label,
                              stop_at_eos=stop_at_eos)
    check_positive("--num-samples", num_samples)
    check_positive("--length", length)
    check_positive("--steps", steps)
    model = _load(checkpoint)
    known = torch.zeros(num_samples, length, dtype=torch.bool)
    texts = _run(model, settings, torch.zeros(num_samples, length, dtype=torch.long), known)
    if corpus_words:
        _print_corpus_words(model, texts)
    return texts


def _print_corpus_words(model, texts: list[str]) -> None:
    from dlm.eval.corpus_words import corpus_word_fraction, training_corpus_words

    if model.config is None:
        raise ConfigError("--corpus-words needs a checkpoint that records its training data (config.yaml)")
    fraction, count = corpus_word_fraction(texts, training_corpus_words(model.config))
    print(f"corpus words: {100 * fraction:.1f}% of the {count} whitespace-separated words in the samples occur in "
          f"the training corpus ({model.config.data.source})")


def infill_command(checkpoint: str, text: str, sampler: str = "ancestral", steps: int = 128, num_samples: int = 4,
                   seed: int = 0, temperature: float = 1.0, top_p: float = 1.0, out: str = "", cache: str = "",
                   cfg_scale: float = 0.0, allow_unk: bool = False) -> list[str]:
    """Fill the <mask:N> spans of a text template (N unknown tokens each) with a masked or uniform diffusion model.

    Args:
        checkpoint: a dlm diffusion checkpoint dir (an autoregressive one cannot see text to its right: refused).
        text: the template, e.g. "To be, or <mask:12> the question".
        sampler: ancestral, ancestral_cache, analytic, euler, tau_leaping, theta_trapezoidal, theta_rk2,
            confidence, entropy_bounded, first_hitting or remdm, options after a colon (confidence:threshold=0.9).
        steps: reverse steps.
        num_samples: how many fillings.
        seed: seed of every random draw.
        temperature: x0 temperature (0 = argmax).
        top_p: nucleus filtering of x0 (1 = off).
        out: a .jsonl file for the samples, their token ids and these settings.
        cache: dkv_decode, dkv_greedy, prefix or dual (masked models).
        cfg_scale: > 0: unsupervised classifier-free guidance on the known text.
        allow_unk: read characters the tokenizer does not know as its unknown token instead of refusing them.
    """
    from dlm.sample.text_infill import parse_infill_template

    check_positive("--num-samples", num_samples)
    check_positive("--steps", steps)
    model = _load(checkpoint)
    if model.tokenizer is None:
        raise ConfigError(f"checkpoint {checkpoint} has no tokenizer, so a text template cannot be parsed")
    if not model.objective.infills:  # the AR baseline: left to right only
        raise ConfigError(f"checkpoint {checkpoint} decodes only with the {model.objective.sampler().name} "
                          "sampler (left to right) and cannot fill a span from the text on both sides; use a "
                          "bidirectional diffusion checkpoint (or dlm sample)")
    prompt, known = parse_infill_template(text, model.tokenizer, allow_unk=allow_unk)
    settings = SampleSettings(checkpoint, sampler=sampler, steps=steps, num_samples=num_samples,
                              length=known.shape[-1], seed=seed, temperature=temperature, top_p=top_p, out=out,
                              cache=cache, cfg_scale=cfg_scale, text=text, allow_unk=allow_unk)
    return _run(model, settings, prompt.expand(num_samples, -1), known.expand(num_samples, -1))


def _prompted(model, settings: SampleSettings) -> list[str]:
    """One completion per prompt of settings.prompts, rows laid out as `dlm finetune` lays out its training rows."""
    from dlm.data.sft import encode_pairs, read_sft_pairs, responses_until_eos, sft_rows
    from dlm.data.tokenizer import special_tokens

    check_positive("--steps", settings.steps)
    cfg = model.config
    prompt_len = 0 if cfg is None else cfg.objective.condition_prefix
    if model.tokenizer is None or prompt_len <= 0:
        raise ConfigError(f"--prompts needs a checkpoint trained on prompts (`dlm finetune` or `dlm task train`); "
                          f"{settings.checkpoint} has no tokenizer or no prompt width (objective.condition_prefix)")
    specials = special_tokens(model.tokenizer)
    texts = [prompt for prompt, _ in read_sft_pairs(settings.prompts, need_response=False)]
    if not texts:
        raise ConfigError(f"{settings.prompts} holds no prompt")
    encoded = encode_pairs(model.tokenizer, [(text, "") for text in texts])
    for number, (ids, _) in enumerate(encoded, 1):
        if len(ids) > prompt_len:
            raise ConfigError(f"prompt {number} of {settings.prompts} is {len(ids)} tokens; checkpoint "
                              f"{settings.checkpoint} was fine-tuned on prompts of at most {prompt_len}")
    rows = sft_rows(encoded, prompt_len=prompt_len, length=cfg.data.seq_len, eos_id=specials.eos,
                    pad_id=specials.pad)
    settings = dataclasses.replace(settings, num_samples=len(texts), length=cfg.data.seq_len)

    def completions(ids: torch.Tensor) -> list[str]:
        return [model.tokenizer.decode(row) for row in responses_until_eos(ids, prompt_len, specials.eos)]

    return _run(model, settings, rows.ids, rows.condition_mask, context=False, decode=completions,
                records=[{"prompt": text} for text in texts])


def _load(checkpoint: str):
    import dlm

    model = dlm.DiffusionLM.from_pretrained(checkpoint)
    model.eval()
    return model


def _run(model, settings: SampleSettings, prompt: torch.Tensor, known: torch.Tensor, *, context: bool = True,
         decode=None, records: list[dict] | None = None) -> list[str]:
    """Generate the unknown positions, print and write the texts. context: prepend the BOS an autoregressive model
    starts from (a fine-tuned row starts with its own context); decode: ids (B, L) -> texts (default: the whole
    rows); records: extra fields of each JSONL record."""
    from dlm.sample import generate
    from dlm.sample.show_steps import StepRecorder, render_text, token_decoder

    device = next(model.parameters()).device
    objective = model.objective
    if objective.context_tokens and context:
        prompt, known = _with_bos(model, prompt, known, objective.context_tokens)
    options = {"temperature": settings.temperature, "top_p": settings.top_p}
    if settings.block_size:
        options["block_size"] = settings.block_size
    if settings.stop_at_eos:  # only samplers with variable length take it (the block sampler): else one line
        from dlm.data.tokenizer import special_tokens

        eos = None if model.tokenizer is None else special_tokens(model.tokenizer).eos
        if eos is None:
            raise ConfigError(f"--stop-at-eos needs a tokenizer with an EOS token; checkpoint {settings.checkpoint} "
                              "has none")
        options["eos_id"] = eos
    window = _block_window(model, prompt.shape[1])
    if window:
        options["window"] = window  # a window option in the sampler spec overrides this one
    sampler = objective.sampler(settings.sampler, **options)
    recorder = StepRecorder() if settings.show_steps else None
    denoiser = _denoiser(model, settings, known.to(device))  # its errors come before the bar is drawn
    plan = sampler.blocks(~known, settings.steps)  # what generate will run: steps per block, + 1 finish each
    bar = progress(total=sum(block.steps for block in plan) + len(plan), unit="step", desc="sampling")

    def on_step(index: int, t: float, x: torch.Tensor) -> None:
        bar.update(1 if index else 0)
        if recorder is not None:
            recorder(index, t, x[:1])

    generator = torch.Generator(device=device).manual_seed(settings.seed)
    counter, start = NFECounter(denoiser), time.perf_counter()
    try:  # the bar is closed before any error line is printed
        with torch.no_grad():
            ids = generate(counter, model.process, sampler, steps=settings.steps, prompt=prompt.to(device),
                           prompt_mask=known.to(device), generator=generator, on_step=on_step,
                           cache=settings.cache or None).cpu()
    finally:
        bar.close()
    stats = generation_stats(counter.calls, int((~known).sum()), time.perf_counter() - start)
    print(f"{stats['nfe']} denoiser calls (NFE), {stats['tokens']} tokens at {stats['tokens_per_s']:.1f} tokens/s",
          file=sys.stderr)
    texts = decode(ids) if decode else [_decode(model.tokenizer, row.tolist()) for row in ids]  # no trailing EOS
    if recorder is not None:
        mask_id = model.mask_id
        print("\n".join(render_text(recorder, token_decoder(model.tokenizer), mask_id=mask_id,
                                    color=sys.stdout.isatty())))
    for i, text in enumerate(texts):
        print(f"--- sample {i} ---\n{text}")
    if settings.out:
        _write_jsonl(settings.out, texts, ids, settings, stats, records)
    return texts


def _block_window(model, length: int) -> int:
    """A block diffusion model asked for more than its max_len tokens: the sliding window it decodes with (the
    largest multiple of its block size within max_len, sample/block.py); 0 otherwise."""
    if model.objective.default_sampler != "block":
        return 0
    max_len = getattr(getattr(getattr(model, "backbone", None), "cfg", None), "max_len", 0)
    if not max_len or length <= max_len:
        return 0
    window = max_len - max_len % model.objective.block_size
    print(f"{length} tokens > the model's max_len={max_len}: each block sees the last {window} tokens (a sliding "
          "window; approximate past max_len)", file=sys.stderr)
    return window


def _denoiser(model, settings: SampleSettings, known: torch.Tensor):
    """The model, or the model under classifier-free guidance (label, else the known text) when asked for."""
    from dlm.guidance import label_guidance, prompt_guidance

    scale, label = settings.cfg_scale, settings.label
    if label >= 0:
        labels = torch.full((known.shape[0],), label, dtype=torch.long, device=known.device)
        return label_guidance(model, labels, scale)
    if not scale:
        return model
    if model.mask_id is None or not bool(known.any()):
        raise ConfigError("cfg_scale needs a condition: --label for a class-conditional checkpoint, or known text "
                          "(dlm infill) for a masked model")
    return prompt_guidance(model, scale, known, model.process.mask_id)


def _with_bos(model, prompt: torch.Tensor, known: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Prepend the n BOS tokens of context an autoregressive model starts from (objective.context_tokens)."""
    from dlm.data.tokenizer import special_tokens

    bos = special_tokens(model.tokenizer).bos if model.tokenizer is not None else None
    if bos is None:
        raise ConfigError("an autoregressive checkpoint needs a tokenizer with a BOS (or CLS) token to start from")
    column = torch.full((prompt.shape[0], n), bos, dtype=torch.long)
    return torch.cat([column, prompt], 1), torch.cat([torch.ones_like(column, dtype=torch.bool), known], 1)


def _decode(tokenizer, ids: list[int]) -> str:
    """The text of a sample; special tokens (document boundaries) become line breaks instead of gluing words."""
    if tokenizer is None:
        return " ".join(map(str, ids))
    specials, pieces, run = set(tokenizer.all_special_ids), [], []
    for token in [*ids, None]:
        if token is None or token in specials:
            if run:
                pieces.append(tokenizer.decode(run))
            run = []
        else:
            run.append(token)
    return "\n".join(pieces)


def generation_stats(nfe: int, tokens: int, seconds: float) -> dict:
    """What a generation run cost: denoiser calls, generated tokens (all rows), wall seconds and tokens/s."""
    return {"nfe": nfe, "tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / max(seconds, 1e-9)}


def _write_jsonl(path: str, texts: list[str], ids: torch.Tensor, settings: SampleSettings, stats: dict,
                 records: list[dict] | None = None) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", encoding="utf-8") as handle:
        for i, text in enumerate(texts):
            record = {"sample": i, **(records[i] if records else {}), "text": text, "tokens": ids[i].tolist(),
                      "settings": settings.as_dict(), "run": stats}
            handle.write(json.dumps(record) + "\n")
    print(f"samples: {target}")
