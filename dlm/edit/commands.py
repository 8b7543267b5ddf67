"""`dlm edit`: DICE editing of a text (dlm/edit/dice.py, arXiv 2410.08207) from a checkpoint, a typed command.

The editable region is `--span a:b` (token indices, end exclusive) or the text between <edit> and </edit>; the
rest never changes. The source is inverted under its own condition (`--source-label`, default the null class of a
class-conditional checkpoint; `--source-prompt`, default none) and replayed under the target one (`--label`, with
label CFG `--cfg-scale`; or `--prompt`, a text the model reads before the edited one, with unsupervised CFG on it).
It prints the source, the edit with changed tokens highlighted, and the fraction of tokens kept; `--reconstruct`
also replays under the source condition with lambda1 = 1, lambda2 = 0 and prints whether that returns the source.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import torch
from torch import Tensor

from dlm.data.user_text import encode_user_text
from dlm.registry import ConfigError

MARKERS = re.compile(r"<edit>(.*?)</edit>", re.DOTALL)


def edit_command(checkpoint: str, text: str = "", file: str = "", span: str = "", tau: float = 0.7,
                 lambda1: float = 0.7, steps: int = 32, label: int = -1, source_label: int = -1,
                 prompt: str = "", source_prompt: str = "", cfg_scale: float = 0.0, reconstruct: bool = False,
                 target: str = "onehot_margin", seed: int = 0, allow_unk: bool = False) -> dict:
    """DICE-edit a text (--text or --file) toward --label or --prompt; only the editable tokens may change.

    Args:
        checkpoint: a dlm diffusion checkpoint dir with a tokenizer (class-conditional for --label).
        text: the source text; <edit>...</edit> marks the editable region (else --span, else all of it).
        file: read the source text from this file instead of --text.
        span: a:b, the editable token indices (end exclusive), instead of <edit> markers.
        tau: the largest mask ratio of the inversion.
        lambda1: weight of the recorded residuals (1: keep the source).
        steps: inversion (and replay) steps.
        label: the target class (class-conditional checkpoint).
        source_label: the class the source is inverted under (default: the null class).
        prompt: a target text the model reads before the edited one (unsupervised CFG with --cfg-scale).
        source_prompt: the text read before the source when inverting (default: none).
        cfg_scale: classifier-free guidance scale on the target condition (0: plain conditioning).
        reconstruct: also replay under the source condition (lambda1 = 1, lambda2 = 0) and say whether that
            returns the source exactly.
        target: the x0 target recorded by the inversion: onehot_margin (exact replay) or model (the model's own
            x0, may lose near-ties).
        seed: seed of every random draw.
        allow_unk: read characters the tokenizer does not know as its unknown token instead of refusing them.
    """
    from dlm.edit import edit, invert
    from dlm.sample.commands import _load

    model = _load(checkpoint)
    if model.process is None or model.tokenizer is None:  # the autoregressive baseline has no process
        raise ConfigError(f"checkpoint {checkpoint} must be a diffusion model with a tokenizer for dlm edit")
    x0, editable = parse_edit_text(_read(text, file), model.tokenizer, span, allow_unk=allow_unk)
    source, goal = _conditions(model, source_label, source_prompt, label, prompt, cfg_scale, allow_unk)
    generator = torch.Generator().manual_seed(seed)
    trace = invert(source, model.process, x0, steps=steps, tau=tau, editable=editable, target=target,
                   generator=generator)
    edited = edit(goal, trace, lambda1=lambda1, generator=generator)
    kept = float((edited == x0).double().mean())
    color = sys.stdout.isatty()
    print(f"source: {model.tokenizer.decode(x0[0].tolist())}")
    print(f"edited: {highlight(model.tokenizer, edited[0], x0[0], color=color)}")
    print(f"kept:   {kept:.1%} of {x0.shape[1]} tokens; trace {trace.nbytes / 2**20:.2f} MiB")
    result = {"source": model.tokenizer.decode(x0[0].tolist()), "edited": model.tokenizer.decode(edited[0].tolist()),
              "kept": kept}
    if reconstruct:
        exact = bool(torch.equal(edit(source, trace, lambda1=1.0, lambda2=0.0), x0))
        print(f"reconstruction (source condition, lambda1=1, lambda2=0): {'exact' if exact else 'NOT exact'}")
        result["reconstruction_exact"] = exact
    return result


def parse_edit_text(text: str, tokenizer, span: str = "", *, allow_unk: bool = False) -> tuple[Tensor, Tensor]:
    """-> token ids (1, L) and the editable mask (1, L): --span a:b, else <edit>...</edit> markers (each piece is
    tokenized on its own), else the whole text. Characters the tokenizer does not know are refused unless
    allow_unk (dlm/data/user_text.py)."""
    if span and MARKERS.search(text):
        raise ConfigError("give the editable region once: --span or <edit>...</edit> markers, not both")
    pieces = MARKERS.split(text)  # outside, inside, outside, ...
    if "<edit>" in pieces[-1] or "</edit>" in " ".join(pieces[::2]):
        raise ConfigError("unbalanced <edit> markers: write <edit>text to change</edit>")
    ids: list[int] = []
    editable: list[bool] = []
    for k, piece in enumerate(pieces):
        encoded = encode_user_text(tokenizer, piece, what="the text to edit", allow_unk=allow_unk)
        ids += encoded
        editable += [bool(k % 2) or len(pieces) == 1] * len(encoded)
    if not ids:
        raise ConfigError("the text to edit is empty; pass --text or --file")
    if span:
        editable = _span_mask(span, len(ids))
    if not any(editable):
        raise ConfigError("the editable region is empty; widen --span or put text between <edit> and </edit>")
    return torch.tensor([ids]), torch.tensor([editable])


def _span_mask(span: str, length: int) -> list[bool]:
    match = re.fullmatch(r"(\d*):(\d*)", span.strip())
    if match is None:
        raise ConfigError(f"--span {span!r} is not a:b (token indices, end exclusive), e.g. --span 4:20")
    start, end = int(match[1] or 0), int(match[2] or length)
    if not 0 <= start < end <= length:
        raise ConfigError(f"--span {span} is outside the text's {length} tokens; use 0 <= a < b <= {length}")
    return [start <= i < end for i in range(length)]


def _read(text: str, file: str) -> str:
    if bool(text) == bool(file):
        raise ConfigError("give the source as exactly one of --text or --file")
    if file:
        path = Path(file).expanduser()
        if not path.is_file():
            raise ConfigError(f"--file {file} does not exist")
        return path.read_text(encoding="utf-8").rstrip("\n")
    return text


def _conditions(model, source_label: int, source_prompt: str, label: int, prompt: str, cfg_scale: float,
                allow_unk: bool = False):
    """The inverting and the editing denoiser: class labels (class-conditional checkpoints) or prompt prefixes."""
    from dlm.guidance import label_guidance

    classes = model.backbone.cfg.num_classes if hasattr(model, "backbone") else 0
    if label >= 0 and prompt:
        raise ConfigError("give one target condition: --label or --prompt")
    if label < 0 and not prompt:
        raise ConfigError("dlm edit needs a target condition: --label (class-conditional checkpoint) or --prompt")
    if label >= 0:
        if classes <= 0 or not 0 <= label < classes or source_label >= classes:
            raise ConfigError(f"--label/--source-label must be class ids below num_classes={classes}; "
                              "a checkpoint without classes takes --prompt instead")
        src = torch.tensor([classes if source_label < 0 else source_label])
        return label_guidance(model, src, 0.0), label_guidance(model, torch.tensor([label]), cfg_scale)
    def encode(text: str, flag: str) -> Tensor:
        return torch.tensor([encode_user_text(model.tokenizer, text, what=flag, allow_unk=allow_unk)])

    source = Prefixed(model, encode(source_prompt, "--source-prompt"), 0.0) if source_prompt else model
    return source, Prefixed(model, encode(prompt, "--prompt"), cfg_scale)


class Prefixed:
    """A Denoiser over x (B, L) that reads `prefix` (1, P) in front of it: model(cat(prefix, x))[:, P:], with
    unsupervised CFG (the prefix masked in the unconditional branch, dlm.guidance.prompt_guidance) at scale > 0."""

    def __init__(self, model, prefix: Tensor, scale: float):
        mask_id = model.mask_id
        if scale > 0 and mask_id is None:
            raise ConfigError("--cfg-scale with --prompt needs a masked (absorbing) checkpoint")
        self.model, self.prefix, self.scale, self.mask_id = model, prefix, scale, mask_id

    def __call__(self, xt: Tensor, t: Tensor):
        from dlm.denoiser import as_prediction
        from dlm.guidance import prompt_guidance
        from dlm.types import Prediction

        prefix = self.prefix.to(xt.device).expand(xt.shape[0], -1)
        full = torch.cat([prefix, xt], 1)
        denoiser = self.model
        if self.scale > 0:
            known = torch.cat([torch.ones_like(prefix, dtype=torch.bool), torch.zeros_like(xt, dtype=torch.bool)], 1)
            denoiser = prompt_guidance(self.model, self.scale, known, self.mask_id)
        out = as_prediction(denoiser(full, t))
        cut = self.prefix.shape[1]
        return Prediction(log_probs=None if out.log_probs is None else out.log_probs[:, cut:],
                          log_score=None if out.log_score is None else out.log_score[:, cut:])


def highlight(tokenizer, edited: Tensor, source: Tensor, *, color: bool) -> str:
    """The edited text with every changed token marked: bold red on a terminal, [brackets] otherwise."""
    parts = []
    for new, old in zip(edited.tolist(), source.tolist()):
        piece = tokenizer.decode([new])
        parts.append(piece if new == old else (f"\x1b[1;31m{piece}\x1b[0m" if color else f"[{piece}]"))
    return "".join(parts)
