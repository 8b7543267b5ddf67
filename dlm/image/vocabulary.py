"""One vocabulary for text and image tokens, and the rows that put a caption and an image in one sequence.

ids, in order:  [0, W)            caption words (W = len(words); words[0] = "<pad>" pads short captions)
                [W, W + K)        image codes 0..K-1 (code k has id W + k)
                W + K, W + K + 1  <boi>, <eoi> (begin / end of image), only when the vocabulary has text
An image-only vocabulary (no words) is the codebook itself: code k has id k.
Captioned row (UniDisc-style interleaving, arXiv 2503.20853), length C + 2 + h*w:
    caption words (padded with <pad> to C)  <boi>  codes in raster order  <eoi>
The tokenizer (a Hugging Face WordLevel tokenizer over these symbols) is saved with a trained model, so a
checkpoint decodes its own samples to text such as "a handwritten seven <boi> <c12> <c7> ... <eoi>".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dlm.registry import ConfigError

PAD, BOI, EOI = "<pad>", "<boi>", "<eoi>"


def code_symbol(k: int) -> str:
    return f"<c{k}>"


@dataclass(frozen=True)
class JointVocabulary:
    """words: caption words, words[0] == "<pad>" (empty: image-only); codebook_size: K; caption_len: C."""

    words: tuple[str, ...]
    codebook_size: int
    caption_len: int = 0

    @classmethod
    def from_captions(cls, captions: list[str], codebook_size: int) -> JointVocabulary:
        """The words of `captions` (sorted, after <pad>) and the longest caption's word count as C."""
        words = sorted({w for caption in captions for w in caption.split()})
        return cls((PAD, *words), codebook_size, max(len(c.split()) for c in captions))

    @property
    def has_text(self) -> bool:
        return len(self.words) > 0

    @property
    def code_offset(self) -> int:
        return len(self.words)

    @property
    def boi(self) -> int:
        return self._marker(0)

    @property
    def eoi(self) -> int:
        return self._marker(1)

    def _marker(self, index: int) -> int:
        if not self.has_text:
            raise ConfigError("an image-only vocabulary has no <boi> / <eoi>; build it with captions")
        return self.code_offset + self.codebook_size + index

    def __len__(self) -> int:
        return self.code_offset + self.codebook_size + (2 if self.has_text else 0)

    def symbols(self) -> list[str]:
        """Symbol of every id, in id order."""
        markers = [BOI, EOI] if self.has_text else []
        return [*self.words, *(code_symbol(k) for k in range(self.codebook_size)), *markers]

    def code_ids(self, codes: Tensor) -> Tensor:
        """Image codes (..., ) in [0, K) -> their token ids."""
        return codes.long() + self.code_offset

    def codes(self, ids: Tensor) -> Tensor:
        """Token ids of image positions -> codes in [0, K); ids that are not codes map to 0 (and are counted
        as invalid by is_code)."""
        codes = ids.long() - self.code_offset
        return torch.where(self.is_code(ids), codes, torch.zeros_like(codes))

    def is_code(self, ids: Tensor) -> Tensor:
        return (ids >= self.code_offset) & (ids < self.code_offset + self.codebook_size)

    def caption_ids(self, caption: str) -> Tensor:
        """(C,) word ids of `caption`, right-padded with <pad>."""
        index = {w: i for i, w in enumerate(self.words)}
        words = caption.split()
        if len(words) > self.caption_len or any(w not in index for w in words):
            raise ConfigError(f"caption '{caption}' is not in this vocabulary (words: {' '.join(self.words[1:])}, "
                              f"at most {self.caption_len})")
        ids = [index[w] for w in words] + [0] * (self.caption_len - len(words))
        return torch.tensor(ids, dtype=torch.long)

    def caption_text(self, ids: Tensor) -> str:
        """Word ids (C,) -> the caption, pads dropped; ids outside the words read as '?'."""
        return " ".join(self.words[i] if 0 <= i < len(self.words) else "?" for i in ids.tolist() if i != 0)

    def rows(self, codes: Tensor, captions: list[str] | None = None) -> Tensor:
        """codes (N, h*w) -> token rows: the code ids (image-only), or caption <boi> codes <eoi> (N, C + 2 + h*w)."""
        image = self.code_ids(codes.reshape(len(codes), -1))
        if not self.has_text:
            return image
        if captions is None or len(captions) != len(codes):
            raise ConfigError("a vocabulary with text needs one caption per image")
        cache = {c: self.caption_ids(c) for c in set(captions)}
        text = torch.stack([cache[c] for c in captions])
        markers = torch.tensor([[self.boi], [self.eoi]]).expand(2, len(codes))
        return torch.cat([text, markers[0][:, None], image, markers[1][:, None]], dim=1)

    def layout(self, length: int) -> RowLayout:
        """Which positions of a row of `length` hold the caption, the markers and the codes."""
        text = self.caption_len if self.has_text else 0
        markers = 1 if self.has_text else 0
        return RowLayout(length, text, text + markers, length - markers)

    def tokenizer(self):
        """A Hugging Face fast tokenizer over symbols() (WordLevel, whitespace-separated)."""
        from tokenizers import Tokenizer, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        symbols = self.symbols()
        tok = Tokenizer(models.WordLevel({s: i for i, s in enumerate(symbols)}, unk_token=symbols[0]))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        specials = {"pad_token": PAD, "bos_token": BOI, "eos_token": EOI} if self.has_text else {}
        return PreTrainedTokenizerFast(tokenizer_object=tok, **specials)


@dataclass(frozen=True)
class RowLayout:
    """Positions of a row: caption [0, text_end), codes [image_start, image_end), markers around the codes."""

    length: int
    text_end: int
    image_start: int
    image_end: int

    def mask(self, part: str) -> Tensor:
        """bool (1, L): True on the 'caption', 'image' or 'markers' positions."""
        m = torch.zeros(1, self.length, dtype=torch.bool)
        if part == "caption":
            m[:, : self.text_end] = True
        elif part == "image":
            m[:, self.image_start : self.image_end] = True
        elif part == "markers":
            m[:, self.text_end : self.image_start] = True
            m[:, self.image_end :] = True
        else:
            raise ConfigError(f"unknown row part '{part}'; choose caption, image or markers")
        return m
