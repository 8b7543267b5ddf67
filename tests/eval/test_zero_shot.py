"""Zero-shot perplexity on tiny checkpoints: packing, estimators agreeing, exact AR, self-describing results."""

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

import dlm
from dlm.eval.commands import ppl_command
from dlm.eval.corpora import EvalTexts
from dlm.eval.estimators import TimeSampling
from dlm.eval.zero_shot import evaluate_blocks, make_blocks, zero_shot_perplexity

REPO = Path(__file__).resolve().parents[2]
ROWS = ["First Citizen:\nBefore we proceed any further, hear me speak.", "", "All:\nSpeak, speak."] * 20


def _texts(rows=ROWS) -> EvalTexts:
    return EvalTexts("toy", "test", rows, "inline", "")


def test_wrap_and_pad_blocks(checkpoints):
    tok = dlm.DiffusionLM.from_pretrained(checkpoints["mdlm"]).tokenizer
    bos, eos, pad = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
    wrapped = make_blocks(["ab", "", "c"] * 4, tok, 6)  # stream a b E E c E ..., 4 tokens per block
    a, b, c = tok("abc", add_special_tokens=False)["input_ids"]
    assert wrapped.ids[:2].tolist() == [[bos, a, b, eos, eos, eos], [bos, c, eos, a, b, eos]]
    assert bool(wrapped.mask.all()) and len(wrapped.ids) == 6  # 24 stream tokens / 4; remainder dropped
    padded = make_blocks(["ab", "abcabc"], tok, 5, mode="pad")
    assert padded.ids.tolist() == [[bos, a, b, eos, pad], [bos, a, b, c, eos]]
    assert padded.mask.tolist() == [[True] * 4 + [False], [True] * 5]
    assert len(make_blocks(ROWS, tok, 16, max_blocks=3).ids) == 3


def test_many_sample_estimate_converges_to_the_one_t_per_sequence_estimate(checkpoints):
    model = dlm.DiffusionLM.from_pretrained(checkpoints["mdlm"]).eval()
    blocks = make_blocks(ROWS, model.tokenizer, 64, max_blocks=16)
    cfg = model.objective.cfg
    one_t = evaluate_blocks(model, blocks, TimeSampling("mdlm", 16, cfg.time_sampler, cfg.sampling_eps),
                            progress=False)
    many = evaluate_blocks(model, blocks, TimeSampling("many", 64), progress=False, seed=1)
    se = math.hypot(one_t.se, many.se)
    assert abs(one_t.nll - many.nll) < 3 * se + 2e-3 * many.nll, (one_t, many)  # eps truncation is < 0.1%
    assert 0 < many.se < 0.05 * many.nll and many.se_method == "collapsed_strata"


def test_autoregressive_perplexity_is_exact_through_the_same_pipeline(checkpoints):
    model = dlm.DiffusionLM.from_pretrained(checkpoints["ar"]).eval()
    row = zero_shot_perplexity(model, _texts(), progress=False)
    blocks = make_blocks(ROWS, model.tokenizer, 64)
    with torch.no_grad():  # -log p(x^l | x^{<l}) for l = 1..62: the block's BOS and closing EOS are not scored
        direct = model.objective.token_nll(model, blocks.ids)[:, :-1].sum() / (blocks.ids.shape[0] * 62)
    assert row["nll"] == pytest.approx(float(direct), rel=1e-6) and row["nll_se"] == 0.0
    assert (row["estimator"], row["se_method"]) == ("exact", "exact")


def test_ppl_command_writes_a_reproducible_self_describing_results_file(checkpoints, shared_data, tmp_path, capsys):
    ckpts = f"{checkpoints['mdlm']},{checkpoints['ar']}"
    kwargs = dict(datasets="ptb@test,wikitext103@test", data_dir=str(shared_data), max_blocks=8, seed=3)
    payload = ppl_command(ckpts, out=str(tmp_path / "ppl.json"), **kwargs)
    saved = json.loads((tmp_path / "ppl.json").read_text())
    assert saved["provenance"]["arguments"]["seed"] == 3 and saved["provenance"]["git"]["commit"]
    assert saved["provenance"]["dlm_version"] == dlm.__version__
    rows = {(Path(r["checkpoint"]).name, r["dataset"]): r for r in saved["rows"]}
    mdlm_ptb = rows[("mdlm", "ptb")]
    for key in ("checkpoint", "weights_sha256", "objective", "split", "source", "detokenizer", "nll", "nll_se", "ppl",
                "ppl_se", "bits_per_token", "num_tokens", "estimator", "n_t", "time_sampler", "eps", "seq_len",
                "mode", "seed", "blocks_sha1"):
        assert key in mdlm_ptb, key
    assert (mdlm_ptb["split"], mdlm_ptb["seq_len"], mdlm_ptb["num_blocks"]) == ("test", 64, 8)
    assert mdlm_ptb["num_tokens"] == rows[("ar", "ptb")]["num_tokens"] == 8 * 62  # positions 1..62 for both
    assert mdlm_ptb["blocks_sha1"] == rows[("ar", "ptb")]["blocks_sha1"]
    ratio = {r["dataset"]: r for r in saved["ratios"]}["ptb"]
    assert ratio["ratio"] == pytest.approx(mdlm_ptb["ppl"] / rows[("ar", "ptb")]["ppl"])
    assert "/AR" in capsys.readouterr().out
    again = ppl_command(str(checkpoints["mdlm"]), out=str(tmp_path / "again.json"), **kwargs)
    assert again["rows"][0]["nll"] == payload["rows"][0]["nll"]  # same seed, same number


def test_bench_script_runs_on_tiny_checkpoints(checkpoints, shared_data, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_zero_shot", REPO / "scripts" / "bench_zero_shot.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    assert bench.main([str(checkpoints["mdlm"]), str(checkpoints["ar"]), "--data-dir", str(shared_data),
                       "--max-blocks", "4", "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert {r["dataset"] for r in saved["rows"]} == {"ptb", "wikitext2", "wikitext103", "lm1b"}
    assert len(saved["ratios"]) == 4 and all(r["ratio"] > 0 for r in saved["ratios"])
    assert saved["provenance"]["command"] == "scripts/bench_zero_shot.py" and "± se" in capsys.readouterr().out


def test_pad_mode_scores_only_real_tokens(checkpoints):
    model = dlm.DiffusionLM.from_pretrained(checkpoints["mdlm"]).eval()
    row = zero_shot_perplexity(model, _texts([r for r in ROWS if r][:8]), mode="pad", progress=False, n_t=2)
    blocks = make_blocks([r for r in ROWS if r][:8], model.tokenizer, 64, mode="pad")
    assert row["num_tokens"] == int(blocks.scored.sum()) == int(blocks.mask.sum()) - 8 < blocks.mask.numel()
    assert not blocks.scored[:, 0].any() and not (blocks.scored & ~blocks.mask).any()  # BOS and pads never count
    assert row["mode"] == "pad" and row["se_method"] == "independent_draws" and torch.isfinite(torch.tensor(row["nll"]))
