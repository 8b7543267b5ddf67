"""ImageModel: a DiffusionLM trained on an image source, with its vocabulary, row layout and codec; the
conditional tasks it serves through `generate(prompt=, prompt_mask=)` and `conditional_elbo`.

    text_to_image(labels)   captioned rows: caption + markers clamped, codes generated; with cfg_scale w > 0 on a
                            masked process, unsupervised CFG on the caption (the null branch sees it masked,
                            dlm.guidance.prompt_guidance); image-only rows: unconditional samples (labels ignored)
    image_to_text(rows)     zero-shot classification by likelihood, the Bayes rule under a uniform class prior:
                            argmin over the K class captions of a bound on -log p(caption | codes). Diffusion:
                            conditional_elbo over the caption positions with the codes clamped, the same noise
                            (common random numbers) for every candidate; autoregressive (the caption precedes the
                            image): the exact -log p(caption, codes), which differs from it by -log p(codes) only.
    inpaint(rows, keep)     the codes where keep is True clamped (e.g. the top half), the rest generated
    edit_caption(rows, y)   DICE (arXiv 2410.08207, dlm.edit): the codes inverted under their own caption, then
                            replayed under the caption of class y (the model with the caption positions swapped)
    code_nll(rows)          held-out bound on -log p(codes | caption) per code, nats: conditional_elbo over the
                            image positions (diffusion), exact for AR; image-only rows: the ELBO of the codes
Every method takes generator=; rows are token rows as the source builds them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dlm.eval.likelihood import MAX_EXACT_TARGETS, masked_conditional_nll
from dlm.guidance import prompt_guidance
from dlm.image.source import PREFIXES, ImageSource
from dlm.image.vocabulary import JointVocabulary, RowLayout
from dlm.registry import ConfigError
from dlm.sample import generate


@dataclass
class ImageModel:
    model: torch.nn.Module  # a DiffusionLM
    source: ImageSource
    vocab: JointVocabulary
    layout: RowLayout
    codec: torch.nn.Module  # a VQCodec

    @classmethod
    def load(cls, checkpoint: str, codec: str = "") -> ImageModel:
        """A checkpoint trained with data.source = vq:... / vqtext:...; codec overrides the source's codec dir."""
        from dlm.diffusion_lm import DiffusionLM
        from dlm.image.codec import VQCodec
        model = DiffusionLM.from_pretrained(checkpoint).eval()
        model.check_config()
        spec = model.config.data.source
        if spec.partition(":")[0] not in PREFIXES:
            raise ConfigError(f"checkpoint {checkpoint} was trained on '{spec}', not an image source (vq:...)")
        source = ImageSource.parse(spec)
        if codec:
            source = ImageSource(codec, source.dataset, source.split, source.captioned)
        vocab = source.vocabulary()
        return cls(model, source, vocab, vocab.layout(model.config.data.seq_len), VQCodec.from_pretrained(source.codec))

    def sampler(self, name: str = ""):
        """The objective's sampler: `name`, else its family's default (the AR baseline: always left to right)."""
        return self.model.objective.sampler(name or None)

    def caption_rows(self, labels: Tensor) -> Tensor:
        """(B, L) rows holding each label's caption and the markers; image positions hold code 0."""
        captions = [self.captions()[int(y)] for y in labels]
        codes = torch.zeros(len(labels), self.layout.image_end - self.layout.image_start, dtype=torch.long)
        return self.vocab.rows(codes, captions if self.vocab.has_text else None)

    def captions(self) -> list[str]:
        """The caption of every class, in label order."""
        return self.source.class_captions()

    def generate(self, rows: Tensor, keep: Tensor, *, steps: int, sampler: str = "", cfg_scale: float = 0.0,
                 generator: torch.Generator | None = None, final: str = "sample") -> Tensor:
        """rows (B, L) with the positions where keep (bool (B, L) or (1, L)) is True clamped; returns (B, L)."""
        chosen = self.sampler(sampler)
        if final != "sample" and hasattr(chosen, "final"):
            chosen.final = final
        denoiser = self.model
        if cfg_scale > 0:
            if self.model.mask_id is None:
                raise ConfigError("cfg_scale needs a masked (absorbing) process: the null branch masks the caption")
            denoiser = prompt_guidance(self.model, cfg_scale, keep & self.layout.mask("caption"),
                                       self.model.process.mask_id)
        with torch.no_grad():
            return generate(denoiser, self.model.process, chosen, steps=steps, prompt=rows,
                            prompt_mask=keep.expand_as(rows), generator=generator)

    def text_to_image(self, labels: Tensor, *, steps: int, cfg_scale: float = 0.0, sampler: str = "",
                      generator: torch.Generator | None = None) -> Tensor:
        """Images (B, C, H, W) in [0, 1] generated for each label's caption (module docstring)."""
        rows = self.caption_rows(labels)
        keep = ~self.layout.mask("image") if self.vocab.has_text else torch.zeros_like(self.layout.mask("image"))
        out = self.generate(rows, keep, steps=steps, sampler=sampler, cfg_scale=cfg_scale, generator=generator)
        return self.decode(out)

    def decode(self, rows: Tensor) -> Tensor:
        """Token rows -> images via the codec (positions that are not codes decode as code 0)."""
        return self.codec.decode(self.vocab.codes(rows[:, self.layout.image_start : self.layout.image_end])).cpu()

    @torch.no_grad()
    def image_to_text(self, rows: Tensor, *, n_t: int = 8, generator: torch.Generator | None = None) -> Tensor:
        """(B,) predicted class of each row's image (module docstring); n_t: time samples per candidate."""
        if not self.vocab.has_text:
            raise ConfigError("image->text needs a captioned model (data.source vqtext:...)")
        caption = self.layout.mask("caption").expand_as(rows)
        generator = generator if generator is not None else torch.Generator(device=rows.device)
        state = generator.get_state()
        candidates = []
        for text in self.captions():
            candidate = rows.clone()
            candidate[:, : self.layout.text_end] = self.vocab.caption_ids(text)
            candidates.append(candidate)
        if self.exact_caption_bound():  # all candidates in one call: the masked rows they share run once
            nll = masked_conditional_nll(self.model, self.model.process, torch.cat(candidates), caption[0])
            return nll.view(len(candidates), len(rows)).argmin(0)
        nll = []
        for candidate in candidates:
            # Family policy kept here (1 of 2 sites outside objectives/): a left-to-right model cannot condition the
            # caption on the image after it, so it ranks by its exact joint -log p(row), which differs from
            # -log p(caption | image) by a constant shared by the candidates (the image).
            if self.model.objective.exact_likelihood:
                nll.append(self.model.elbo(candidate))
                continue
            generator.set_state(state)  # common random numbers: the candidates differ only in their caption
            nll.append(self.model.objective.conditional_elbo(self.model, candidate, caption, n_t=n_t,
                                                             generator=generator))
        return torch.stack(nll, 1).argmin(1)

    def caption_estimator(self, n_t: int) -> str:
        """How image_to_text scores a caption: the names caption_accuracy reports."""
        if self.model.objective.exact_likelihood:  # the branch of image_to_text above
            return "exact_likelihood"
        return "exact_mask_patterns" if self.exact_caption_bound() else f"monte_carlo_n_t={n_t}"

    def exact_caption_bound(self) -> bool:
        """Whether image_to_text sums the caption's masked bound over every mask pattern (no Monte Carlo, n_t
        unused): an objective that can (Objective.enumerates_mask_patterns), with a caption short enough."""
        return self.model.objective.enumerates_mask_patterns and 0 < self.vocab.caption_len <= MAX_EXACT_TARGETS

    def inpaint(self, rows: Tensor, keep_codes: Tensor, *, steps: int, sampler: str = "",
                generator: torch.Generator | None = None) -> Tensor:
        """Images (B, C, H, W): the codes where keep_codes (bool (B, h*w)) is True clamped (caption too)."""
        keep = torch.zeros_like(rows, dtype=torch.bool)
        keep[:, self.layout.image_start : self.layout.image_end] = keep_codes
        keep |= ~self.layout.mask("image")
        return self.decode(self.generate(rows, keep, steps=steps, sampler=sampler, generator=generator))

    def edit_caption(self, rows: Tensor, labels: Tensor, *, steps: int, tau: float = 0.7, lambda1: float = 0.7,
                     lambda2: float | None = None, generator: torch.Generator | None = None) -> Tensor:
        """(B, L) rows whose codes are edited towards each label's caption; only code positions ever change. With
        labels = the rows' own classes, lambda1 = 1 and lambda2 = 0 the replay returns `rows` bit for bit."""
        from dlm.edit import edit, invert
        if not self.vocab.has_text:
            raise ConfigError("editing under a caption needs a captioned model (data.source vqtext:...)")
        trace = invert(self.model, self.model.process, rows, steps=steps, tau=tau, editable=self.layout.mask("image"),
                       generator=generator)
        end = self.layout.text_end
        target = self.caption_rows(labels)[:, :end].to(rows.device)  # (B, text_end)

        def swapped(xt: Tensor, t: Tensor):  # the editing denoiser: the same model reading the target caption
            return self.model(torch.cat([target, xt[:, end:]], 1), t)

        return edit(swapped, trace, lambda1=lambda1, lambda2=lambda2, generator=generator)

    @torch.no_grad()
    def code_nll(self, rows: Tensor, *, n_t: int = 16, generator: torch.Generator | None = None) -> Tensor:
        """(B,) bound on -log p(codes | caption) in nats (module docstring); divide by h*w for per code."""
        image = self.layout.mask("image")
        if not self.vocab.has_text:  # the codes are the whole row
            return self.model.elbo(rows, n_t=n_t, generator=generator)
        return self.model.objective.conditional_elbo(self.model, rows, image.expand_as(rows), n_t=n_t,
                                                     generator=generator)
