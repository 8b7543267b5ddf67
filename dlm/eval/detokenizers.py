"""Detokenizers for the zero-shot corpora: undo the word-level tokenization of PTB, WikiText, LM1B, ... so a
subword tokenizer sees ordinary text (MDLM, arXiv 2406.07524, zero-shot protocol; docs/likelihood.md).

Each is a plain str -> str function; the rules and their order are those of MDLM's `dataloader.py`
(`wt_detokenizer`, `ptb_detokenizer`, `lm1b_detokenizer`, `lambada_detokenizer`,
`scientific_papers_detokenizer`), so perplexities are comparable with the published tables.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from dlm.registry import ConfigError

Rule = tuple[str, str, bool]  # (pattern, replacement, is_regex)


def _apply(text: str, rules: list[Rule]) -> str:
    for pattern, replacement, is_regex in rules:
        text = re.sub(pattern, replacement, text) if is_regex else text.replace(pattern, replacement)
    return text


_WIKITEXT: list[Rule] = [
    ("s '", "s'", False),  # contractions
    (r"/' [0-9]/", r"/'[0-9]/", True),
    (" @-@ ", "-", False),  # number separators
    (" @,@ ", ",", False),
    (" @.@ ", ".", False),
    (" : ", ": ", False),  # punctuation
    (" ; ", "; ", False),
    (" . ", ". ", False),
    (" ! ", "! ", False),
    (" ? ", "? ", False),
    (" , ", ", ", False),
    (r"\(\s*([^\)]*?)\s*\)", r"(\1)", True),  # brackets and quotes hug their content
    (r"\[\s*([^\]]*?)\s*\]", r"[\1]", True),
    (r"{\s*([^}]*?)\s*}", r"{\1}", True),
    (r"\"\s*([^\"]*?)\s*\"", r'"\1"', True),
    (r"'\s*([^']*?)\s*'", r"'\1'", True),
    ("= = = =", "====", False),  # section markers
    ("= = =", "===", False),
    ("= =", "==", False),
    (" \u00b0 ", "\u00b0", False),  # degree sign
    (" \n", "\n", False),
    ("\n ", "\n", False),
    (" N ", " 1 ", False),
    (" 's", "'s", False),
]

_LM1B: list[Rule] = [
    ("http : / / ", "http://", False),
    ("https : / / ", "https://", False),
    (r" '(\w+)", r"'\1", True),
    (r" (\w+) \. ", r" \1. ", True),
    (r" (\w+) \.$", r" \1.", True),
    (" ? ", "? ", False),
    (r" \?$", "?", True),
    (" ! ", "! ", False),
    (r" \!$", "!", True),
    (" , ", ", ", False),
    (" : ", ": ", False),
    (" ; ", "; ", False),
    (" / ", "/", False),
    (r"\" ([^\"]+) \"", r'"\1"', True),
    (r"' ([^']+) '", r"'\1'", True),
    (r"\( ([^\(\)]+) \)", r"(\1)", True),
    (r"\[ ([^\[\]]+) \]", r"[\1]", True),
    ("$ ", "$", False),
    ("\u00a3 ", "\u00a3", False),
]


def wikitext(text: str) -> str:
    """WikiText: ' @-@ ' -> '-', ' , ' -> ', ', '= = =' -> '===', brackets and quotes closed up, ..."""
    return _apply(text, _WIKITEXT)


def ptb(text: str) -> str:
    """Penn Treebank (Mikolov): re-attach clitics ('s, n't), '\\/' -> '/', N -> 1, <unk> -> '?'."""
    text = _apply(text, [(" 's", "'s", False), ("s ' ", "s' ", False), (" n't", "n't", False),
                         (" \n ", "\n", False), ("\\/", "/", False)])
    for _ in range(10):  # " N N " needs repeated passes: each replace skips overlapping matches
        text = text.replace(" N ", " 1 ")
    return _apply(text, [("$ 1", "$1", False), ("# 1", "#1", False), ("<unk>", "?", False)])


def lm1b(text: str) -> str:
    """One Billion Words: URLs, clitics, sentence-final and inner punctuation, quotes, brackets, currency."""
    return _apply(text, _LM1B)


def lambada(text: str) -> str:
    """LAMBADA (OpenAI jsonl): curly double quotes -> '"', stripped, on a fresh line."""
    return "\n" + text.replace("\u201c", '"').replace("\u201d", '"').strip()


def scientific_papers(text: str) -> str:
    """arXiv / PubMed articles: the WikiText rules, then the LM1B rules."""
    return lm1b(wikitext(text))


DETOKENIZERS: dict[str, Callable[[str], str]] = {
    "wikitext": wikitext,
    "ptb": ptb,
    "lm1b": lm1b,
    "lambada": lambada,
    "scientific_papers": scientific_papers,
}


def get_detokenizer(name: str | None) -> Callable[[str], str] | None:
    """The detokenizer called `name`, or None for an empty name. Raises ConfigError for an unknown name."""
    if not name:
        return None
    if name not in DETOKENIZERS:
        raise ConfigError(f"unknown detokenizer '{name}'; choose one of: {', '.join(DETOKENIZERS)}")
    return DETOKENIZERS[name]
