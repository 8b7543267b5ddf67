"""scripts/bench/quickstart.py reads the quickstart as it is: its run folder, its own `dlm sample` line (re-run with
other seeds) and the corpus-word line `dlm sample --corpus-words` prints."""

from __future__ import annotations

import contextlib
import io
from types import SimpleNamespace

from dlm.cli import parse_arguments
from dlm.config import load_config
from dlm.eval.corpus_words import corpus_word_fraction, training_corpus_words
from dlm.sample.commands import _print_corpus_words
from scripts.bench import quickstart

SCRIPT = quickstart.SCRIPT.read_text()


def test_the_sample_line_is_the_quickstarts_dlm_sample_on_its_run():
    run_dir = quickstart.quickstart_run_dir(SCRIPT)
    argv = quickstart.quickstart_sample_argv(SCRIPT, run_dir)
    args = parse_arguments(argv)
    assert args["command"] == "sample" and args["checkpoint"] == f"{run_dir}/final"
    assert args["corpus_words"] and args["seed"] == 0
    seeded = parse_arguments(quickstart.with_seed(argv, 3))
    assert seeded["seed"] == 3 and {k: v for k, v in seeded.items() if k != "seed"} == \
        {k: v for k, v in args.items() if k != "seed"}


def test_the_corpus_word_line_is_read_back_as_printed():
    config = load_config(quickstart.REPO / "configs/runs/shakespeare_mdlm_bpe8k.yaml", [])
    texts = ["ROMEO:\nBut soft, what light", "lemg. rod sagtrt the king"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        _print_corpus_words(SimpleNamespace(config=config), texts)
    fraction, words = corpus_word_fraction(texts, training_corpus_words(config))
    assert quickstart.corpus_fraction(out.getvalue()) == (round(100 * fraction, 1), words)
    assert 0 < fraction < 1 and words == 10
