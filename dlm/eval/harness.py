"""lm-eval-harness model `dlm`: masked, uniform, score-entropy, block-diffusion and autoregressive checkpoints under
EleutherAI's lm-evaluation-harness. lm-eval (0.4.x) finds models only in its own registry, so the model exists once
this module is imported; the `dlm-lm-eval` console script (installed with dlm[eval]) is `lm_eval` with it imported:

    dlm-lm-eval --model dlm --model_args pretrained=DIR,mc_num=128 --tasks lambada_openai
    import dlm.eval.harness, lm_eval
    lm_eval.simple_evaluate(model="dlm", model_args="pretrained=DIR,mc_num=128", tasks=[...])

model_args: pretrained (checkpoint dir), mc_num (Monte Carlo samples of t per request), batch_size (rows per
forward), sampler (options after a colon, ";"-separated: sampler=confidence:threshold=0.9;edit_threshold=0.8) /
steps (default: one per generated token) / block_size / gen_length (generate_until), seed,
device (cuda without CUDA falls back to cpu), threads (CPU intra-op threads, set by dlm lm-eval / dlm-lm-eval;
0 = eval.device's default; a library caller sets its own), greedy
(diffusion is_greedy for loglikelihood requests), cfg_scale (masked models: unsupervised classifier-free guidance on
the context, whose unconditional branch sees it masked, in scoring and generation, as LLaDA's cfg; guidance/cfg.py).
Every sequence is laid out like one of the model's training blocks (eval/layout.py): [BOS] + context + continuation,
never a real token at position L-1, where training blocks always hold EOS, and the block's EOS there when the
sequence fills the block. Every family gets the same tokens at the same positions.
  loglikelihood(context, continuation): log p(c | y) >= -conditional ELBO with only the continuation noised and the
      context clean (likelihood.conditional_elbo; LLaDA arXiv 2502.09992; docs/likelihood.md, with the continuous
      stratified t in place of LLaDA's mask count); exact for the AR baseline. Each request draws from its own
      generator seeded by request_seed(seed, context ids, continuation ids): results do not depend on batching.
      is_greedy for masked models (greedy=true): unmasking the continuation one most confident argmax at a time
      (the confidence sampler through dlm.sample.generate, LLaDA's suffix greedy check) reproduces it.
  loglikelihood_rolling(text): the document through disjoint windows of the layout's room R (L-2 tokens after BOS;
      lm-eval's rolling windows: every token scored once; BOS + the first R tokens, then BOS + 1 token of context +
      R - 1 new ones, the last window with as much preceding text as fits), summing the conditional ELBO of each
      window: a bound on the log-likelihood of this windowed model (exact for AR). No greedy check here.
  generate_until(context, gen_kwargs): dlm.sample.generate with the prompt clamped and gen_length new positions
      (semi-AR with block_size), cut at EOS and at the first stop string. Its cost (denoiser calls, generated
      positions, seconds, tokens/s) is in get_model_info()["generation"].
Block-diffusion checkpoints (objective.attention_block = b > 0; docs/block_diffusion.md#likelihood-evaluation) use
their objective's own bound (a continuation's blocks read the clean context before them) and their block sampler
(`sampler` names the masked sampler run inside each block; steps are per block, default b: one per token). A
sequence that ends inside a block is completed to whole blocks by positions that stay masked: unscored and
marginalized in scoring, decoded and dropped in generation and in the is_greedy check (confidence, one token per
step within each block). With block_size 1 and objective.clip = [1, 1] loglikelihood and loglikelihood_rolling are
the exact chain rule. cfg_scale does not apply to them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from typing import Any

import torch
import torch.nn.functional as F

try:
    from lm_eval.api.model import TemplateLM
    from lm_eval.api.registry import register_model
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
except ImportError as err:  # pragma: no cover - exercised only without the optional dependency
    raise ImportError("dlm.eval.harness needs lm-eval: pip install 'dlm[eval]' (or pip install lm-eval)") from err

from dlm.data.tokenizer import special_tokens
from dlm.diffusion_lm import DiffusionLM
from dlm.eval.device import resolve_device
from dlm.eval.layout import BlockLayout
from dlm.eval.oov import oov_id, warn_oov
from dlm.guidance.cfg import prompt_guidance
from dlm.registry import ConfigError
from dlm.sample import NFECounter, generate
from dlm.utils.progress import progress
from dlm.validation import check_arguments, check_positive


def request_seed(seed: int, *token_lists: list[int]) -> int:
    """A 63-bit seed from the harness seed and a request's token ids (sha256), independent of request order."""
    digest = hashlib.sha256(repr((seed, *map(list, token_lists))).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@register_model("dlm")
class DLMHarness(TemplateLM):
    """lm-eval LM over a dlm checkpoint; see the module docstring for the meaning of each request type."""

    def __init__(self, pretrained: str, mc_num: int = 128, batch_size: int | str | None = 32,
                 sampler: str = "ancestral", steps: int = 0, block_size: int = 0, gen_length: int = 0,
                 seed: int = 0, device: str | None = None, greedy: bool = False, max_batch_size: int | None = None,
                 cfg_scale: float = 0.0, threads: int = 0, exclude_oov: bool = False):
        """batch_size: rows per forward pass; device and max_batch_size ('auto' batching, unused) come from lm-eval."""
        super().__init__()
        self._device = resolve_device(device)
        # threads: applied by the entry points (dlm lm-eval, dlm-lm-eval) around the run; the model only records it
        self.threads = {"cpu_threads": torch.get_num_threads(), "cpu_threads_requested": int(threads)}
        self.model = DiffusionLM.from_pretrained(str(pretrained), map_location=self._device).eval()
        if self.model.tokenizer is None:
            raise ConfigError(f"checkpoint {pretrained} has no tokenizer; lm-eval needs one")
        self.tokenizer = self.model.tokenizer
        self.specials = special_tokens(self.tokenizer)
        self.layout = BlockLayout.of(self.model)
        self.unk, self.exclude_oov = oov_id(self.tokenizer), str(exclude_oov).lower() in ("true", "1", "yes")
        self.oov_tokens = self.continuation_tokens = 0
        self.max_length = self.model.config.data.seq_len
        self.mc_num = check_positive("lm-eval model arg mc_num", mc_num)
        self.seed, self.greedy = int(seed), bool(greedy)
        self.batch_size = int(batch_size) if isinstance(batch_size, int) or str(batch_size).isdigit() else 32
        self.sampler, self.steps, self.block_size = sampler, int(steps), int(block_size)
        self.gen_length = int(gen_length)
        self.generation = {"nfe": 0, "tokens": 0, "seconds": 0.0}  # generate_until's cost so far
        self.cfg_scale = float(cfg_scale)
        if self.cfg_scale and (self.model.mask_id is None or self.model.objective.attention_block):
            raise ConfigError("cfg_scale (unsupervised CFG) needs a masked (absorbing) checkpoint without blocks")

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None) -> DLMHarness:
        """lm-eval's model_args string -> DLMHarness, with a one-line ConfigError for unknown or missing args."""
        from lm_eval.utils import simple_parse_args_string

        args = {**simple_parse_args_string(arg_string),
                **{k: v for k, v in (additional_config or {}).items() if v is not None}}
        return cls(**check_arguments(cls.__init__, args, what="lm-eval model_args"))

    # --- tokenization ----------------------------------------------------------------------------------------
    @property
    def eot_token_id(self) -> int:
        return self.specials.eos

    @property
    def prefix_token_id(self) -> int:
        return self.layout.start_id

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        return self.tokenizer(string, add_special_tokens=False)["input_ids"]

    def tok_decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.tokenizer, "name_or_path", "dlm"))

    # --- scoring -------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def score(self, context: list[int], continuation: list[int], *, greedy: bool = False) -> tuple[float, bool]:
        """(log p(continuation | context) lower bound, exact for AR; is_greedy) with the request laid out like a
        training block (layout.place: the context cut on the left). greedy=False skips the is_greedy check."""
        placed = self.layout.place(context, continuation)
        x0, target = placed.tensor(self._device), placed.target(self._device)
        self.continuation_tokens += len(continuation)
        self.oov_tokens += sum(token == self.unk for token in continuation)
        if self.exclude_oov and self.unk is not None:
            target &= x0 != self.unk  # unknown tokens become context
        seed = request_seed(self.seed, placed.ids[:placed.start], continuation)
        generator = torch.Generator(device=self._device).manual_seed(seed)
        nll = self.model.objective.conditional_elbo(self._denoiser(~target), x0, target, n_t=self.mc_num,
                                                    generator=generator, batch_size=self.batch_size)
        return -float(nll.sum()), greedy and self.greedy and self._greedy_match(x0, target)

    def _denoiser(self, context: torch.Tensor):
        """The model, or the model guided on the context positions (bool (1, L)) when cfg_scale > 0."""
        if not self.cfg_scale:
            return self.model
        return prompt_guidance(self.model, self.cfg_scale, context, self.model.process.mask_id)

    def _greedy_match(self, x0: torch.Tensor, target: torch.Tensor) -> bool:
        """Decode the continuation greedily with the family's sampler for it: masked models unmask one most-confident
        argmax at a time (the confidence sampler with one step per token; LLaDA suffix_greedy_prediction), the AR
        baseline decodes left to right at temperature 0; True iff that reproduces it. False where no greedy
        decoder runs (uniform processes have no masks to fill)."""
        try:
            sampler = self.model.objective.sampler("confidence", temperature=0.0)
        except ConfigError:  # the process has no masks to fill
            return False
        ids, known = self.whole_blocks(x0, ~target)
        x = generate(self._denoiser(known), self.model.process, sampler, steps=sampler.token_steps(int(target.sum())),
                     prompt=ids, prompt_mask=known)
        return bool(torch.equal(x[:, :x0.shape[1]], x0))

    def whole_blocks(self, ids: torch.Tensor, known: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, known) (1, n) completed to a whole number of the model's blocks (attention_block b > 0; unchanged
        without blocks) by positions that are decoded (known False) and then dropped: a block model decodes whole
        blocks."""
        block = self.model.objective.attention_block
        extra = -ids.shape[1] % block if block else 0
        return F.pad(ids, (0, extra)), F.pad(known, (0, extra))

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs: Any) -> list[tuple[float, bool]]:
        out = []
        for (strings, context, continuation) in progress(requests, desc="loglikelihood", disable=disable_tqdm):
            result = self.score(context, continuation, greedy=True)
            self.cache_hook.add_partial("loglikelihood", strings, result)
            out.append(result)
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        out = []
        for request in progress(requests, desc="loglikelihood_rolling", disable=disable_tqdm):
            total = sum(self.score(context, continuation)[0] for context, continuation in self.rolling_windows(
                request.args[0]))
            self.cache_hook.add_partial("loglikelihood_rolling", request.args, total)
            out.append(total)
        return out

    def rolling_windows(self, text: str) -> list[tuple[list[int], list[int]]]:
        """(context, continuation) token windows covering `text` once; each fits the layout."""
        # max_seq_len = the layout's room and context_len 2: later windows keep one token of context after BOS
        windows = get_rolling_token_windows(self.tok_encode(text), self.prefix_token_id, self.layout.room, 2)
        return [make_disjoint_window(window) for window in windows]

    # --- generation ----------------------------------------------------------------------------------------------
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        out = []
        for request in progress(requests, desc="generate_until", disable=disable_tqdm):
            context, gen_kwargs = request.args
            text = self.generate_text(context, dict(gen_kwargs))
            self.cache_hook.add_partial("generate_until", request.args, text)
            out.append(text)
        return out

    @torch.no_grad()
    def generate_text(self, context: str, gen_kwargs: dict[str, Any]) -> str:
        """Continue `context`: gen_length new tokens (or gen_kwargs max_gen_toks), cut at EOS and stop strings."""
        until = gen_kwargs.get("until") or []
        until = [until] if isinstance(until, str) else list(until)
        new = min(int(self.gen_length or gen_kwargs.get("max_gen_toks", 256)), self.layout.room)
        placed = self.layout.place(self.tok_encode(context), [0] * new)
        temperature = float(gen_kwargs.get("temperature", 0.0)) if gen_kwargs.get("do_sample", False) else 0.0
        sampler = self.model.objective.sampler(self.sampler, temperature=temperature, block_size=self.block_size)
        ids, known = self.whole_blocks(placed.tensor(self._device), ~placed.target(self._device))
        generator = torch.Generator(device=self._device).manual_seed(request_seed(self.seed, placed.ids[:placed.start]))
        denoiser = NFECounter(self._denoiser(known))  # the model unless cfg_scale (masked models only, checked above)
        start = time.perf_counter()
        x = generate(denoiser, self.model.process, sampler, steps=self.steps or sampler.token_steps(new), prompt=ids,
                     prompt_mask=known, generator=generator)
        self.generation["seconds"] += time.perf_counter() - start
        self.generation["nfe"] += denoiser.calls
        self.generation["tokens"] += new
        tokens = x[0, placed.start:placed.stop].tolist()
        if self.eot_token_id in tokens:
            tokens = tokens[:tokens.index(self.eot_token_id)]
        text = self.tok_decode(tokens)
        for stop in until:
            text = text.split(stop)[0] if stop else text
        return text

    def get_model_info(self) -> dict[str, Any]:
        """Merged by lm-eval into results['config'] after the run: block layout, CPU threads, OOV count of the
        continuations (a warning above 0.1%), generate_until's cost (NFE, tokens, seconds, tokens/s)."""
        if not self.exclude_oov:
            warn_oov("the lm-eval continuations", self.oov_tokens, self.continuation_tokens)
        generation = {**self.generation, "tokens_per_s": self.generation["tokens"] / max(self.generation["seconds"],
                                                                                           1e-9)}
        return {"dlm_layout": dataclasses.asdict(self.layout), **self.threads, "oov_tokens": self.oov_tokens,
                "generation": generation,
                "continuation_tokens": self.continuation_tokens, "exclude_oov": self.exclude_oov,
                "oov_rate": self.oov_tokens / max(self.continuation_tokens, 1)}
