"""Local zero-shot corpora: each loader rebuilds the Hugging Face rows from its staged format and detokenizes."""

import gzip
import json

import pytest

from dlm.config import DataConfig
from dlm.eval.corpora import TextFormat, load_eval_texts, parse_name
from dlm.registry import ConfigError


def test_ptb_rows_are_stripped_lines_detokenized(shared_data):
    test = load_eval_texts("ptb@test", data_dir=str(shared_data))
    assert (test.split, len(test.rows), test.detokenizer) == ("test", 3761, "ptb")  # HF ptb_text_only test rows
    assert test.rows[0] == "no it wasn't black monday"  # raw: " no it was n't black monday "
    valid = load_eval_texts("ptb", data_dir=str(shared_data))  # MDLM scores the validation split by default
    assert (valid.split, len(valid.rows)) == ("validation", 3370)
    assert valid.rows[1].startswith("? ? watching abc's monday night football")  # "<unk> <unk> ... abc 's"


def test_wikitext_tokenized_raw_and_hf_rows_csv_agree_on_the_row_layout(shared_data):
    wt2 = load_eval_texts("wikitext2@test", data_dir=str(shared_data)).rows
    wt103 = load_eval_texts("wikitext103@test", data_dir=str(shared_data)).rows
    raw = load_eval_texts("wikitext2-raw@test", data_dir=str(shared_data)).rows
    assert len(wt2) == len(wt103) == len(raw) == 4358  # HF wikitext test rows, blank rows kept as ""
    assert [r == "" for r in wt2] == [r == "" for r in wt103] == [r == "" for r in raw]
    assert wt2[1] == " = Robert <unk> =\n" and wt103[1] == raw[1] == " = Robert Boulter =\n"
    assert raw[3].startswith(" Robert Boulter is an English film, television and theatre actor. He had a "
                             "guest-starring role")  # from " film , television ... a guest @-@ starring role"
    assert len(load_eval_texts("wikitext103", data_dir=str(shared_data)).rows) == 3760  # validation


def test_lm1b_lines_detokenized(shared_data):
    texts = load_eval_texts("lm1b@validation", data_dir=str(shared_data))
    assert texts.rows[0].startswith("But now, it's looking like the page")  # "But now , it 's looking ..."
    assert texts.rows[1] == "Everybody is aware of consequences."
    with pytest.raises(ConfigError, match="lm1b@validation"):  # MDLM's lm1b split is test: no local copy
        load_eval_texts("lm1b", data_dir=str(shared_data))


def test_scientific_papers_zip_articles(shared_data):
    texts = load_eval_texts("pubmed", data_dir=str(shared_data))
    assert (texts.split, len(texts.rows), texts.detokenizer) == ("validation", 2, "scientific_papers")
    assert texts.rows[0].startswith("approximately, one - third of patients with symptomatic vte")
    assert "\n" in texts.rows[0]  # article = "\n".join(article_text), as the HF builder does
    assert len(load_eval_texts("scientific_papers_arxiv@test", data_dir=str(shared_data)).rows) == 2


def test_user_files_jsonl_csv_txt(shared_data, tmp_path):
    gsm = load_eval_texts(str(shared_data / "gsm8k" / "test.jsonl"), data_cfg=DataConfig(text_field="question"))
    assert len(gsm.rows) == 1319 and gsm.rows[0].startswith("Janet’s ducks lay 16 eggs per day.")
    assert gsm.detokenizer == ""
    (tmp_path / "c.csv").write_text("id,body\n1,hello there\n2,general kenobi\n")
    assert load_eval_texts(str(tmp_path / "c.csv"), data_cfg=DataConfig(text_field="body")).rows == \
        ["hello there", "general kenobi"]
    with gzip.open(tmp_path / "d.jsonl.gz", "wt") as f:
        f.write(json.dumps({"text": "a b"}) + "\n")
    assert load_eval_texts(str(tmp_path / "d.jsonl.gz")).rows == ["a b"]
    (tmp_path / "e.txt").write_text("one\ntwo\n")
    assert load_eval_texts(str(tmp_path / "e.txt"), data_cfg=DataConfig(doc_split="line")).rows == ["one", "two"]


def test_names_and_errors(tmp_path):
    assert parse_name("lm1b@dev") == ("lm1b", "validation")
    assert parse_name("scientific_papers_pubmed") == ("pubmed", "")
    with pytest.raises(ConfigError, match="unknown split"):
        parse_name("ptb@holdout")
    with pytest.raises(ConfigError, match="unknown zero-shot dataset"):
        load_eval_texts("nonsense")
    with pytest.raises(ConfigError, match="not found"):
        load_eval_texts("ptb", data_dir=str(tmp_path))


AG_NEWS = ('"3","Wall St. Bears Claw Back","Reuters - Short-sellers are seeing green again."\n'
           '"4","Mars Rover Finds Water","Scientists said, on Tuesday, that water once flowed."\n')


def test_headerless_csv_with_joined_columns_and_sentence_per_line_txt(tmp_path):
    (tmp_path / "news.csv").write_text(AG_NEWS)
    with pytest.raises(ConfigError, match="--no-header"):  # the first row is data, not column names
        load_eval_texts(str(tmp_path / "news.csv"))
    texts = load_eval_texts(str(tmp_path / "news.csv"), text_format=TextFormat(text_field="1,2", csv_header=False))
    assert texts.rows == ["Wall St. Bears Claw Back Reuters - Short-sellers are seeing green again.",
                          "Mars Rover Finds Water Scientists said, on Tuesday, that water once flowed."]
    assert texts.reading == {"text_field": "1,2", "csv_header": False}
    (tmp_path / "h.csv").write_text("title,body\nA,b c\nD,e\n")
    assert load_eval_texts(str(tmp_path / "h.csv"), text_format=TextFormat(text_field="title,body")).rows == \
        ["A b c", "D e"]
    (tmp_path / "lines.txt").write_text("one sentence.\nanother one.\nand a third.\n")
    assert len(load_eval_texts(str(tmp_path / "lines.txt")).rows) == 1  # the checkpoint default: blank_line
    lines = load_eval_texts(str(tmp_path / "lines.txt"), text_format=TextFormat(doc_split="line"))
    assert lines.rows == ["one sentence.", "another one.", "and a third."] and lines.reading == {"doc_split": "line"}
    (tmp_path / "q.jsonl").write_text('{"question": "why?", "text": "no"}\n')
    assert load_eval_texts(str(tmp_path / "q.jsonl"), text_format=TextFormat(text_field="question")).rows == ["why?"]


def test_named_corpora_read_from_a_local_copy(tmp_path, shared_data):
    (tmp_path / "ag_news").mkdir()
    (tmp_path / "ag_news" / "test.csv").write_text(AG_NEWS)
    for texts in (load_eval_texts(f"ag_news={tmp_path / 'ag_news' / 'test.csv'}"),
                  load_eval_texts("ag_news", data_dir=str(tmp_path))):  # HF's text = title + " " + description
        assert (texts.name, texts.split, len(texts.rows)) == ("ag_news", "test", 2)
        assert texts.rows[0] == "Wall St. Bears Claw Back Reuters - Short-sellers are seeing green again."
    (tmp_path / "heldout").write_text("But now , it 's looking like the page .\nEverybody is aware .\n")
    lm1b = load_eval_texts(f"lm1b@test={tmp_path / 'heldout'}")  # no suffix: LM1B's only reader
    assert (lm1b.split, lm1b.detokenizer, lm1b.rows[0]) == ("test", "lm1b", "But now, it's looking like the page.")
    raw = (shared_data / "wikitext-2-raw" / "wiki.test.raw").read_text()
    (tmp_path / "wiki.test.tokens").write_text(raw)
    assert load_eval_texts(f"wikitext103@test={tmp_path / 'wiki.test.tokens'}").rows == \
        load_eval_texts("wikitext2-raw@test", data_dir=str(shared_data)).rows  # the HF rows layout
    with pytest.raises(ConfigError, match="only the named corpora"):
        load_eval_texts(f"mine={tmp_path / 'heldout'}")
