"""The MDLM detokenizers on concrete strings (rules and order of MDLM's dataloader.py)."""

import pytest

from dlm.eval.detokenizers import get_detokenizer, lambada, lm1b, ptb, scientific_papers, wikitext
from dlm.registry import ConfigError


def test_wikitext_joins_numbers_punctuation_brackets_and_headings():
    raw = (' The 2 @,@ 000 @-@ seat arena , built in 1 @.@ 5 years ( 1990 ) , is " big " . '
           "It was the players ' home . \n")
    assert wikitext(raw) == ' The 2,000-seat arena, built in 1.5 years (1990), is "big". It was the players\' home.\n'
    assert wikitext(" = = Career = = \n") == " == Career ==\n"
    assert wikitext(" = Robert Boulter = \n") == " = Robert Boulter =\n"


def test_ptb_reattaches_clitics_and_maps_numbers_and_unknowns():
    assert ptb("no it was n't black monday") == "no it wasn't black monday"
    assert ptb("the dow fell N N points to $ N a share <unk> \\/ s ' bonds") == \
        "the dow fell 1 1 points to $1 a share ? / s' bonds"


def test_lm1b_urls_quotes_brackets_currency():
    raw = 'He said : " I \'m here . " Visit http : / / example.com / page ( now ) for $ 5 , or £ 3 ?'
    assert lm1b(raw) == 'He said: "I\'m here." Visit http://example.com/page (now) for $5, or £3?'


def test_lambada_and_scientific_papers():
    assert lambada("  \u201cHello,\u201d she said.  ") == '\n"Hello," she said.'
    assert scientific_papers("the results ( see fig . 1 ) show @xmath0 , i.e. , that it works") == \
        "the results (see fig. 1) show @xmath0, i.e., that it works"


def test_lookup():
    assert get_detokenizer("") is None and get_detokenizer("ptb") is ptb
    with pytest.raises(ConfigError, match="unknown detokenizer"):
        get_detokenizer("nope")
