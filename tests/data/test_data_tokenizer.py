from __future__ import annotations

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from dlm.data import build_tokenizer, special_tokens
from dlm.registry import ConfigError
from dlm.types import SpecialTokens

TEXT = "First Citizen:\nBefore we proceed, hear me.\n\n  All:\tSpeak, speak!\n"


def ids_of(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def test_char_vocab_is_sorted_chars_then_specials():
    tok = build_tokenizer("char", ["ba\n", "c a"])
    assert isinstance(tok, PreTrainedTokenizerFast)
    assert tok.convert_ids_to_tokens(list(range(len(tok)))) == [
        "\n",
        " ",
        "a",
        "b",
        "c",
        "<bos>",
        "<eos>",
        "<pad>",
        "<unk>",
    ]
    assert special_tokens(tok) == SpecialTokens(bos=5, eos=6, pad=7, mask=None)


def test_char_round_trip_keeps_newlines_and_spaces():
    tok = build_tokenizer("char", [TEXT])
    ids = ids_of(tok, TEXT)
    assert len(ids) == len(TEXT)  # one id per character, no specials added
    assert tok.decode(ids) == TEXT
    assert ids_of(tok, "\n\n") == [tok.convert_tokens_to_ids("\n")] * 2


def test_char_unknown_character_maps_to_unk():
    tok = build_tokenizer("char", ["abc"])
    assert ids_of(tok, "aZc") == [0, tok.unk_token_id, 2]


def test_char_save_and_reload_offline(tmp_path, offline):
    tok = build_tokenizer("char", [TEXT])
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert ids_of(again, TEXT) == ids_of(tok, TEXT)
    assert again.decode(ids_of(again, TEXT)) == TEXT
    assert special_tokens(again) == special_tokens(tok)


def test_byte_ids_are_utf8_bytes():
    tok = build_tokenizer("byte")
    text = "héllo\n wörld €"
    assert ids_of(tok, text) == list(text.encode("utf-8"))
    assert tok.decode(ids_of(tok, text)) == text
    assert len(tok) == 260
    assert special_tokens(tok) == SpecialTokens(bos=256, eos=257, pad=258, mask=None)


def test_gpt2_matches_reference_ids(shared_file):
    shared_file("tokenizers/gpt2/encoder.json")
    tok = build_tokenizer("gpt2")
    assert ids_of(tok, "Hello world") == [15496, 995]
    assert ids_of(tok, " Hello") == [18435]  # no prefix space is added
    specials = special_tokens(tok)
    assert specials.bos == specials.eos == 50256
    assert specials.pad == 50257 and specials.mask is None
    assert tok.decode(ids_of(tok, TEXT)) == TEXT


def test_bert_has_mask_and_cls_sep(shared_file, tmp_path, offline):
    shared_file("tokenizers/bert-base-uncased/vocab.txt")
    tok = build_tokenizer("bert-base-uncased")
    specials = special_tokens(tok)
    assert specials.mask == tok.convert_tokens_to_ids("[MASK]") == 103
    assert (specials.bos, specials.eos, specials.pad) == (101, 102, 0)
    assert tok.decode(ids_of(tok, "Hello World")) == "hello world"
    tok.save_pretrained(tmp_path)
    assert special_tokens(AutoTokenizer.from_pretrained(tmp_path)) == specials


def test_bpe_trains_deterministically_and_round_trips():
    texts = [TEXT * 3, "the quick brown fox jumps over the lazy dog\n" * 5]
    first, second = build_tokenizer("bpe:300", texts), build_tokenizer("bpe:300", texts)
    assert first.get_vocab() == second.get_vocab()
    assert 259 < len(first) <= 300
    assert special_tokens(first) == SpecialTokens(bos=0, eos=1, pad=2, mask=None)
    ids = ids_of(first, TEXT)
    assert len(ids) < len(TEXT.encode())  # merges were learned
    assert first.decode(ids) == TEXT
    assert first.decode(ids_of(first, "Ünseen ∑ text")) == "Ünseen ∑ text"  # byte-level: nothing is unknown


@pytest.mark.parametrize("spec", ["no-such-tokenizer-xyz", "./no/such/dir", "bpe:abc", "bpe:100"])
def test_unknown_tokenizer_is_a_config_error(spec, offline):
    with pytest.raises(ConfigError, match=r"tokenizer"):
        build_tokenizer(spec, ["some text"])


def test_char_without_texts_is_a_config_error():
    with pytest.raises(ConfigError, match="training texts"):
        build_tokenizer("char")
