"""Zero-shot perplexity on tiny checkpoints: packing, estimators agreeing, exact AR, self-describing results."""

import json
import math
from pathlib import Path

import pytest
import torch

import dlm
from dlm import cli
from dlm.eval.commands import ppl_command
from dlm.eval.corpora import EvalTexts
from dlm.eval.device import THREAD_ENV, available_cores, cpu_thread_policy, cpu_threads
from dlm.eval.estimators import TimeSampling
from dlm.eval.oov import text_oov, warn_oov
from dlm.eval.report import ar_ratios
from dlm.eval.zero_shot import Blocks, evaluate_blocks, make_blocks, zero_shot_perplexity
from dlm.process import Absorbing
from dlm.testing import ToyDistribution

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
    from scripts.bench import zero_shot as bench

    out = tmp_path / "bench.json"
    assert bench.main([str(checkpoints["mdlm"]), str(checkpoints["ar"]), "--data-dir", str(shared_data),
                       "--max-blocks", "4", "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert {r["dataset"] for r in saved["rows"]} == {"ptb", "wikitext2", "wikitext103", "lm1b"}
    assert len(saved["ratios"]) == 4 and all(r["ratio"] > 0 for r in saved["ratios"])
    assert saved["provenance"]["command"] == "scripts/bench/zero_shot.py" and "± se" in capsys.readouterr().out


def test_pad_mode_scores_only_real_tokens(checkpoints):
    model = dlm.DiffusionLM.from_pretrained(checkpoints["mdlm"]).eval()
    row = zero_shot_perplexity(model, _texts([r for r in ROWS if r][:8]), mode="pad", progress=False, n_t=2)
    blocks = make_blocks([r for r in ROWS if r][:8], model.tokenizer, 64, mode="pad")
    assert row["num_tokens"] == int(blocks.scored.sum()) == int(blocks.mask.sum()) - 8 < blocks.mask.numel()
    assert not blocks.scored[:, 0].any() and not (blocks.scored & ~blocks.mask).any()  # BOS and pads never count
    assert row["mode"] == "pad" and row["se_method"] == "independent_draws" and torch.isfinite(torch.tensor(row["nll"]))


def test_diffusion_rows_bound_the_tokens_the_ar_row_scores_given_the_same_context(checkpoints):
    """Both families score positions 1..L-2 of each wrap block; the diffusion bound keeps BOS and the block's EOS
    clean: it equals the conditional ELBO of those tokens given them, draw for draw."""
    mdlm = dlm.DiffusionLM.from_pretrained(checkpoints["mdlm"]).eval()
    ar = dlm.DiffusionLM.from_pretrained(checkpoints["ar"]).eval()
    rows = {name: zero_shot_perplexity(model, _texts(), max_blocks=8, estimator="many", n_t=4, seed=5,
                                       progress=False) for name, model in (("mdlm", mdlm), ("ar", ar))}
    assert rows["mdlm"]["blocks_sha1"] == rows["ar"]["blocks_sha1"]
    assert rows["mdlm"]["num_tokens"] == rows["ar"]["num_tokens"] == 8 * 62
    blocks = make_blocks(ROWS, mdlm.tokenizer, 64, max_blocks=8)
    assert blocks.scored[:, 1:63].all() and not blocks.scored[:, [0, 63]].any()
    assert blocks.clean[:, [0, 63]].all() and not blocks.clean[:, 1:63].any()  # BOS and EOS: the context
    (ratio,) = ar_ratios([{**rows["mdlm"], "checkpoint": "m"}, {**rows["ar"], "checkpoint": "a"}])  # rows as made
    assert ratio["ratio"] == pytest.approx(math.exp(rows["mdlm"]["nll"] - rows["ar"]["nll"]))
    assert ratio["num_tokens"] == 8 * 62


class _ExactToyModel(torch.nn.Module):
    """The exact denoiser of a ToyDistribution under a process, as the model the zero-shot pipeline scores.
    temperature != 1 tempers its log-probs: a wrong (but valid) model, whose bound must be looser."""

    def __init__(self, toy: ToyDistribution, process, temperature: float = 1.0):
        super().__init__()
        self.process, self.exact, self.temperature = process, toy.denoiser(process), temperature
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the module a device

    def forward(self, xt, t):
        return torch.log_softmax(self.exact(xt, t) / self.temperature, -1)


@pytest.mark.parametrize("sampling", [TimeSampling("many", 64), TimeSampling("mdlm", 64, "stratified", 1e-4)],
                         ids=["many", "mdlm"])
def test_block_bound_is_the_exact_conditional_nll_for_the_exact_denoiser(sampling):
    """Blocks scored at positions 1..L-2 with BOS/EOS-like context at 0 and L-1 (what make_blocks gives a wrap
    block): for the exact denoiser of a toy the reported masked bound equals -log p(x^{1..L-2} | x^0, x^{L-1}),
    computed here from the toy's table, within 4 standard errors. On blocks drawn from the toy, a tempered (wrong)
    denoiser's bound lies above it (its excess is a conditional KL divergence in expectation)."""
    toy = ToyDistribution(length=4, vocab=3, seed=2)
    table = toy.probs.view(3, 3, 3, 3)  # p(x0, x1, x2, x3)
    ids = toy.states[torch.multinomial(toy.probs, 400, replacement=True, generator=torch.Generator().manual_seed(0))]
    exact = -torch.log(table[ids[:, 0], ids[:, 1], ids[:, 2], ids[:, 3]] / table.sum((1, 2))[ids[:, 0], ids[:, 3]])
    scored = torch.zeros_like(ids, dtype=torch.bool)
    scored[:, 1:3] = True
    blocks = Blocks(ids=ids, mask=torch.ones_like(scored), scored=scored, stream=scored, rows=len(ids))
    exact_nll = float(exact.sum()) / (2 * len(ids))  # nats per scored token
    estimate = evaluate_blocks(_ExactToyModel(toy, Absorbing(3)), blocks, sampling, batch_size=64, progress=False)
    assert estimate.num_tokens == 2 * len(ids) and 0 < estimate.se < 0.05 * exact_nll
    assert abs(estimate.nll - exact_nll) < 4 * estimate.se, (estimate, exact_nll)
    looser = evaluate_blocks(_ExactToyModel(toy, Absorbing(3), temperature=2.0), blocks, sampling, batch_size=64,
                             progress=False)
    assert looser.nll > exact_nll + 4 * looser.se, (looser, exact_nll)


def test_oov_tokens_are_counted_warned_and_can_be_excluded(checkpoints, capsys):
    model = dlm.DiffusionLM.from_pretrained(checkpoints["ar"]).eval()
    assert text_oov(model.tokenizer, "a€b☃c") == (2, 5)  # the char vocabulary has neither € nor ☃
    rows = ["First Citizen: € hear me ☃ speak."] * 12
    texts = _texts(rows)
    kept = zero_shot_perplexity(model, texts, progress=False)
    blocks = make_blocks(rows, model.tokenizer, 64)
    unknown = int((blocks.ids[:, 1:63] == model.tokenizer.unk_token_id).sum())
    assert kept["oov_tokens"] == unknown > 0 and kept["oov_rate"] == pytest.approx(unknown / kept["num_tokens"])
    dropped = zero_shot_perplexity(model, texts, progress=False, exclude_oov=True)
    assert dropped["num_tokens"] == kept["num_tokens"] - unknown and dropped["exclude_oov"]
    assert "excluded" in dropped["scored_positions"] and dropped["blocks_sha1"] != kept["blocks_sha1"]
    with torch.no_grad():
        nll = model.objective.token_nll(model, blocks.ids)[:, :-1]  # positions 1..62
    known = blocks.ids[:, 1:63] != model.tokenizer.unk_token_id
    assert dropped["nll"] == pytest.approx(float(nll[known].sum()) / int(known.sum()), rel=1e-6)
    assert warn_oov("toy", unknown, kept["num_tokens"]) and "--exclude-oov" in capsys.readouterr().err
    assert not warn_oov("toy", 0, kept["num_tokens"])


def test_num_rows_counts_the_rows_scored(checkpoints):
    model = dlm.DiffusionLM.from_pretrained(checkpoints["ar"]).eval()
    rows = ["a" * 30] * 10  # 31 stream tokens each (with EOS): two rows per block of 62
    row = zero_shot_perplexity(model, _texts(rows), max_blocks=2, progress=False)
    assert (row["num_rows"], row["num_rows_loaded"], row["num_blocks"]) == (4, 10, 2)
    padded = zero_shot_perplexity(model, _texts(rows), mode="pad", max_blocks=3, progress=False)
    assert (padded["num_rows"], padded["num_blocks"]) == (3, 3)


def test_cpu_threads_default_and_are_recorded(checkpoints, tmp_path, monkeypatch):
    before = torch.get_num_threads()
    for name in THREAD_ENV:
        monkeypatch.delenv(name, raising=False)
    cores = available_cores()
    default = max(1, min(4, cores // 2))
    assert cpu_thread_policy(torch.device("cpu")) == {"cpu_threads": default, "cpu_threads_source": "default"}
    with cpu_threads(torch.device("cpu")) as policy:
        assert torch.get_num_threads() == default and policy["cpu_threads_source"] == "default"
    assert torch.get_num_threads() == before  # the caller's count comes back
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert cpu_thread_policy(torch.device("cpu"))["cpu_threads_source"] == "environment"
    (tmp_path / "t.txt").write_text("ab " * 200)
    payload = ppl_command(str(checkpoints["ar"]), datasets=str(tmp_path / "t.txt"), threads=1, device="cpu",
                          out=str(tmp_path / "o.json"))
    assert payload["runtime"] == {"device": "cpu", "cpu_threads": 1, "cpu_threads_source": "argument"}
    assert payload["provenance"]["torch_threads"] == 1
    assert torch.get_num_threads() == before


def test_eval_ppl_scores_local_files_with_flags_alone(checkpoints, tmp_path, capsys):
    news = "".join(f'"{i % 4 + 1}","Headline {i}","Body of story {i}, with a comma."\n' for i in range(40))
    (tmp_path / "test.csv").write_text(news)
    (tmp_path / "lines.txt").write_text("".join(f"sentence number {i}.\n" for i in range(40)))
    base = ["eval", "ppl", "--checkpoint", str(checkpoints["ar"]), "--device", "cpu"]
    out = str(tmp_path / "o.json")
    assert cli.main([*base, "--datasets", str(tmp_path / "test.csv"), "--out", out]) == 2  # headerless: one line
    assert "--no-header" in capsys.readouterr().err
    assert cli.main([*base, "--datasets", f"{tmp_path / 'test.csv'},ag_news={tmp_path / 'test.csv'}",
                     "--no-header", "--text-field", "1,2", "--out", out]) == 0
    user, named = json.loads(Path(out).read_text())["rows"]
    assert (user["text_field"], user["csv_header"], named["dataset"], named["reader"]) == ("1,2", False, "ag_news",
                                                                                         "ag_news_csv")
    assert user["blocks_sha1"] == named["blocks_sha1"]  # both read "Headline i Body of story i, with a comma."
    assert cli.main([*base, "--datasets", str(tmp_path / "lines.txt"), "--doc-split", "line", "--out", out]) == 0
    (row,) = json.loads(Path(out).read_text())["rows"]
    assert (row["num_rows_loaded"], row["doc_split"]) == (40, "line")
