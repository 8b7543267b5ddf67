"""Tokenizers by spec. Every one is a transformers PreTrainedTokenizerFast, so save_pretrained(dir) and
AutoTokenizer.from_pretrained(dir) round-trip offline.

Specs: 'char' | 'byte' | 'gpt2' | 'bert-base-uncased' | 'bpe:<vocab size>' | a HF tokenizer name or local dir.
Every tokenizer built here has bos, eos and pad ids; only tokenizers that ship one (BERT) have a mask id.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from dlm.data.paths import DATA_DIR_ENV, data_dir
from dlm.registry import ConfigError
from dlm.types import SpecialTokens

if TYPE_CHECKING:  # transformers costs ~1 s to import: only building a tokenizer imports it
    from transformers import PreTrainedTokenizerFast

SPECIALS = {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>"}
GPT2_EOS = "<|endoftext|>"
GPT2_PAD = "<|pad|>"
_EACH_CHAR = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")


def build_tokenizer(spec: str, texts: Iterable[str] | None = None) -> PreTrainedTokenizerFast:
    """The tokenizer named by `spec`. 'char' and 'bpe:<N>' are built from `texts` (the training documents).

    Raises ConfigError (one line) for an unknown spec, missing texts, or a HF name that cannot be loaded.
    """
    if spec == "char":
        return _char(_need_texts(spec, texts))
    if spec == "byte":
        return _byte()
    if spec == "gpt2":
        return _gpt2()
    if spec == "bert-base-uncased":
        return _bert()
    if spec.startswith("bpe:"):
        return _bpe(spec, _need_texts(spec, texts))
    return _pretrained(spec)


def special_tokens(tok: PreTrainedTokenizerFast) -> SpecialTokens:
    """bos / eos / pad / mask ids of `tok` (bos falls back to [CLS], eos to [SEP]; mask is None if it has none)."""
    bos = tok.bos_token_id if tok.bos_token_id is not None else tok.cls_token_id
    eos = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
    return SpecialTokens(bos=bos, eos=eos, pad=tok.pad_token_id, mask=tok.mask_token_id)


def _need_texts(spec: str, texts: Iterable[str] | None) -> Iterable[str]:
    if texts is None:
        raise ConfigError(f"tokenizer '{spec}' is built from the training texts; pass texts=")
    return texts


def _wrap(tok: Tokenizer, **specials: str) -> PreTrainedTokenizerFast:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tok, clean_up_tokenization_spaces=False, **specials)


def _with_specials(symbols: list[str]) -> dict[str, int]:
    """Vocab of `symbols` (ids 0..n-1 in order) followed by <bos>, <eos>, <pad>, <unk>."""
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({token: len(symbols) + i for i, token in enumerate(SPECIALS.values())})
    return vocab


def _char(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """Character vocab: the sorted characters of `texts` (ids 0..n-1), then the four specials."""
    chars: set[str] = set()
    for text in texts:
        chars.update(text)
    if not chars:
        raise ConfigError("the char tokenizer got no characters: the training texts are empty")
    tok = Tokenizer(models.WordLevel(_with_specials(sorted(chars)), unk_token=SPECIALS["unk_token"]))
    tok.pre_tokenizer = _EACH_CHAR
    tok.decoder = decoders.Fuse()
    return _wrap(tok, **SPECIALS)


def _byte_alphabet() -> list[str]:
    """The printable stand-in character of each byte 0..255, as used by byte-level BPE (GPT-2)."""
    printable = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)}
    shifted = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(shifted)) for b in range(256)]


def _byte() -> PreTrainedTokenizerFast:
    """UTF-8 bytes: id b is byte b (0..255), then <bos>, <eos>, <pad>, <unk> (256..259)."""
    tok = Tokenizer(models.WordLevel(_with_specials(_byte_alphabet()), unk_token=SPECIALS["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False), _EACH_CHAR]
    )
    tok.decoder = decoders.ByteLevel()
    return _wrap(tok, **SPECIALS)


def _gpt2() -> PreTrainedTokenizerFast:
    """GPT-2 BPE (50257 tokens, eos = bos = <|endoftext|>) plus <|pad|> = 50257, from the local data dir.

    Without the local files it falls back to the HF hub tokenizer 'openai-community/gpt2'.
    """
    folder = data_dir() / "tokenizers" / "gpt2"
    vocab, merges = folder / "encoder.json", folder / "vocab.bpe"
    if not (vocab.is_file() and merges.is_file()):
        return _pretrained("openai-community/gpt2", local_hint=f"{folder}/encoder.json + vocab.bpe")
    tok = Tokenizer(models.BPE.from_file(str(vocab), str(merges)))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return _wrap(tok, bos_token=GPT2_EOS, eos_token=GPT2_EOS, unk_token=GPT2_EOS, pad_token=GPT2_PAD)


def gpt2_tiktoken():
    """GPT-2's BPE as a tiktoken Encoding built from the local files (same ids as 'gpt2' for ordinary text, ~6x
    faster), or None when tiktoken or the files are missing. Used by `dlm data prepare` where it is installed."""
    folder = data_dir() / "tokenizers" / "gpt2"
    try:
        import tiktoken
        from tiktoken.load import data_gym_to_mergeable_bpe_ranks
        from tiktoken_ext.openai_public import r50k_pat_str
    except ImportError:
        return None
    if not ((folder / "encoder.json").is_file() and (folder / "vocab.bpe").is_file()):
        return None
    ranks = data_gym_to_mergeable_bpe_ranks(str(folder / "vocab.bpe"), str(folder / "encoder.json"))
    return tiktoken.Encoding("gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks, special_tokens={GPT2_EOS: 50256})


def _bert() -> PreTrainedTokenizerFast:
    """bert-base-uncased WordPiece (30522 tokens; bos = [CLS], eos = [SEP], pad = [PAD], mask = [MASK])."""
    from transformers import BertTokenizerFast

    folder = data_dir() / "tokenizers" / "bert-base-uncased"
    if not (folder / "vocab.txt").is_file():
        return _pretrained("google-bert/bert-base-uncased", local_hint=f"{folder}/vocab.txt")
    return BertTokenizerFast.from_pretrained(str(folder), bos_token="[CLS]", eos_token="[SEP]")


def _bpe(spec: str, texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """Byte-level BPE of the given total vocab size trained on `texts`; ids 0, 1, 2 are <bos>, <eos>, <pad>."""
    size = spec.removeprefix("bpe:")
    specials = [SPECIALS["bos_token"], SPECIALS["eos_token"], SPECIALS["pad_token"]]
    if not size.isdigit() or int(size) < 256 + len(specials):
        raise ConfigError(f"tokenizer '{spec}' needs a vocab size of at least 259 (256 bytes + 3 specials): bpe:<N>")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=int(size),
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return _wrap(tok, bos_token=specials[0], eos_token=specials[1], pad_token=specials[2])


def _pretrained(spec: str, local_hint: str = "") -> PreTrainedTokenizerFast:
    """A HF tokenizer by local dir or hub name (the local HF cache is tried before the network).

    Missing bos / eos fall back to [CLS] / [SEP] (then bos to eos); a missing pad gets a new <pad> token.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if spec.startswith((".", "/", "~")) and not Path(spec).expanduser().is_dir():
        raise ConfigError(f"tokenizer directory not found: {spec}")
    try:
        tok = AutoTokenizer.from_pretrained(spec, local_files_only=True)
    except Exception:  # not in the local cache: ask the hub
        try:
            tok = AutoTokenizer.from_pretrained(spec)
        except Exception as err:  # offline, unknown name, no tokenizer files: all reported as one line
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            where = f"no {local_hint} (set {DATA_DIR_ENV}) and " if local_hint else ""
            raise ConfigError(
                f"unknown tokenizer '{spec}': {where}cannot load it from the HF hub ({reason}); use char, byte, "
                "gpt2, bert-base-uncased, bpe:<N>, a HF tokenizer name or a local tokenizer dir"
            ) from None
    if not isinstance(tok, PreTrainedTokenizerFast):
        raise ConfigError(f"tokenizer '{spec}' has no fast (tokenizers) version; pick another tokenizer")
    _complete_specials(tok, spec)
    return tok


def _complete_specials(tok: PreTrainedTokenizerFast, spec: str) -> None:
    """Give a loaded tokenizer the bos / eos / pad that packing needs (in place)."""
    missing = {}
    if tok.eos_token is None:
        missing["eos_token"] = tok.sep_token
    if tok.bos_token is None:
        missing["bos_token"] = tok.cls_token or missing.get("eos_token") or tok.eos_token
    if tok.pad_token is None:
        missing["pad_token"] = SPECIALS["pad_token"]
    missing = {key: token for key, token in missing.items() if token}
    if tok.eos_token is None and "eos_token" not in missing:
        raise ConfigError(f"tokenizer '{spec}' has no eos or [SEP] token; pick another tokenizer")
    if missing:
        tok.add_special_tokens(missing)
