"""Text a user types (infill templates, texts to edit, edit prompts, task questions) -> token ids, one rule for all.

A character the tokenizer cannot represent becomes its unknown token (<unk>) and is lost: the model reads, and
decoding prints, something else than the user wrote. So every entry point that takes text refuses it with the
list of offending characters, unless the user passes --allow-unk (allow_unk=True), which keeps the <unk> tokens.
Byte-level tokenizers (GPT-2: its "unknown" token is its EOS) represent every character and never refuse.
"""

from __future__ import annotations

from dlm.data.tokenizer import special_tokens
from dlm.registry import ConfigError

ALLOW_UNK_HINT = "remove or replace them, or pass --allow-unk to read them as the unknown token"


def unknown_id(tokenizer) -> int | None:
    """The id that marks unknown text, or None when the tokenizer has none (byte-level BPE: GPT-2's unk is EOS)."""
    unk = getattr(tokenizer, "unk_token_id", None)
    specials = special_tokens(tokenizer)
    return None if unk is None or unk in (specials.bos, specials.eos, specials.pad) else int(unk)


def encode_user_text(tokenizer, text: str, *, what: str, allow_unk: bool = False) -> list[int]:
    """Token ids of `text` (no special tokens added). One-line ConfigError naming `what` (e.g. "--text") and the
    characters that encode to the unknown token, unless allow_unk."""
    ids = tokenizer.encode(text, add_special_tokens=False) if text else []
    unk = unknown_id(tokenizer)
    if unk is not None and unk in ids and not allow_unk:
        reject_unknown_characters(what, {c for c in text if unk in tokenizer.encode(c, add_special_tokens=False)})
    return ids


def reject_unknown_characters(what: str, characters: set[str], hint: str = ALLOW_UNK_HINT) -> None:
    """The one-line ConfigError of every text entry point for characters the model's tokenizer does not know."""
    shown = "".join(sorted(characters))
    raise ConfigError(f"{what} holds characters the model's tokenizer does not know: {shown!r}; {hint}")
