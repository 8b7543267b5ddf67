"""The joint text + image vocabulary: ids never collide, rows have the documented layout, the tokenizer agrees."""

from __future__ import annotations

import pytest
import torch

from dlm.image.datasets import class_captions
from dlm.image.vocabulary import BOI, EOI, PAD, JointVocabulary, code_symbol
from dlm.registry import ConfigError


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_ids_never_collide(dataset):
    vocab = JointVocabulary.from_captions(class_captions(dataset), codebook_size=256)
    symbols = vocab.symbols()
    assert len(symbols) == len(set(symbols)) == len(vocab)
    words = set(range(vocab.code_offset))
    codes = set(vocab.code_ids(torch.arange(256)).tolist())
    markers = {vocab.boi, vocab.eoi}
    assert not (words & codes) and not (words & markers) and not (codes & markers)
    assert words | codes | markers == set(range(len(vocab)))
    assert symbols[vocab.boi] == BOI and symbols[vocab.eoi] == EOI and symbols[0] == PAD
    assert symbols[vocab.code_offset + 17] == code_symbol(17)
    assert bool(vocab.is_code(vocab.code_ids(torch.arange(256))).all())
    assert not bool(vocab.is_code(torch.tensor([0, vocab.boi, vocab.eoi])).any())


def test_rows_layout_and_tokenizer_round_trip():
    captions = class_captions("mnist")
    vocab = JointVocabulary.from_captions(captions, codebook_size=16)
    codes = torch.randint(0, 16, (3, 2, 2), generator=torch.Generator().manual_seed(0))
    rows = vocab.rows(codes, [captions[7], captions[0], captions[1]])
    layout = vocab.layout(rows.shape[1])
    assert rows.shape == (3, vocab.caption_len + 2 + 4)
    assert vocab.caption_text(rows[0, : layout.text_end]) == "a handwritten seven"
    assert bool((rows[:, layout.text_end] == vocab.boi).all()) and bool((rows[:, -1] == vocab.eoi).all())
    assert torch.equal(vocab.codes(rows[:, layout.image_start : layout.image_end]), codes.flatten(1))
    tok = vocab.tokenizer()
    text = tok.decode(rows[0].tolist())
    assert text.startswith("a handwritten seven <boi> <c")
    assert tok(text, add_special_tokens=False)["input_ids"] == rows[0].tolist()
    with pytest.raises(ConfigError, match="not in this vocabulary"):
        vocab.caption_ids("a handwritten cat")


def test_image_only_vocabulary_is_the_codebook():
    vocab = JointVocabulary((), codebook_size=8)
    codes = torch.arange(8).view(2, 4)
    assert len(vocab) == 8 and torch.equal(vocab.rows(codes), codes)
    assert vocab.layout(4).mask("image").all()
    with pytest.raises(ConfigError, match="no <boi>"):
        _ = vocab.boi
