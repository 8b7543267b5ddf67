"""lm-eval end-to-end on the offline toy tasks (tests/eval/fixtures): the harness numbers equal direct calls of
conditional_elbo / the exact AR likelihood / generate."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import dlm
from dlm.eval.likelihood import conditional_elbo

lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is not installed (pip install 'dlm[eval]')")
from lm_eval.api.instance import Instance  # noqa: E402

from dlm.eval.commands import lm_eval_command  # noqa: E402
from dlm.eval.harness import DLMHarness, request_seed  # noqa: E402
from dlm.sample import generate, get_sampler  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TASKS = "dlm_toy_loglikelihood,dlm_toy_rolling,dlm_toy_generate"
MC = 16


@pytest.fixture(scope="module", params=["mdlm", "ar"])
def run(request, checkpoints, tmp_path_factory):
    """(variant, model, lm-eval payload with samples) for the three toy tasks."""
    variant = request.param
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO)  # the task YAMLs name their JSONL relative to the repository root
        patch.setenv("HF_DATASETS_OFFLINE", "1")
        payload = lm_eval_command(f"pretrained={checkpoints[variant]},mc_num={MC},steps=8", TASKS,
                                  include_path=str(REPO / "tests/eval/fixtures"), log_samples=True,
                                  output_path=str(tmp_path_factory.mktemp("lm_eval") / "out.json"))
    return variant, dlm.DiffusionLM.from_pretrained(checkpoints[variant]).eval(), payload


def _ids(model, text: str) -> list[int]:
    return model.tokenizer(text, add_special_tokens=False)["input_ids"]


def _direct_ll(model, context: list[int], continuation: list[int]) -> float:
    """-bound (exact for AR) of continuation | BOS + context placed like a training block of 64: at most 62 tokens
    after BOS, and the block's EOS at 63 when they fill it; with the harness's per-request seed."""
    prefix = [model.tokenizer.bos_token_id, *context[max(0, len(context) - (62 - len(continuation))):]]
    ids = prefix + continuation
    x0 = torch.tensor([ids + [model.tokenizer.eos_token_id] * (len(ids) == 63)])
    target = torch.zeros_like(x0, dtype=torch.bool)
    target[:, len(prefix):len(ids)] = True
    if model.objective.exact_likelihood:
        return -float(model.elbo(x0, attention_mask=target))
    gen = torch.Generator().manual_seed(request_seed(0, prefix, continuation))
    return -float(conditional_elbo(model, model.process, x0, target, n_t=MC, generator=gen))


def test_loglikelihood_matches_direct_calls(run):
    variant, model, payload = run
    samples = payload["samples"]["dlm_toy_loglikelihood"]
    assert len(samples) == 4 and payload["results"]["dlm_toy_loglikelihood"]["perplexity,none"] > 1
    for sample in samples:
        context, continuation = sample["arguments"][0]
        ll, greedy = sample["filtered_resps"][0]
        assert ll == pytest.approx(_direct_ll(model, _ids(model, context), _ids(model, continuation)), rel=1e-5)
        if variant == "ar":  # is_greedy is exact for AR
            x = torch.tensor([[model.tokenizer.bos_token_id, *_ids(model, context + continuation)]])
            n = len(_ids(model, continuation))
            argmax = model(x, None).log_probs[0, -n - 1:-1].argmax(-1)
            assert greedy == bool(torch.equal(argmax, x[0, -n:]))


def test_loglikelihood_rolling_matches_direct_calls(run):
    variant, model, payload = run
    for sample in payload["samples"]["dlm_toy_rolling"]:
        text = sample["arguments"][0][0]
        ll = sample["filtered_resps"][0]
        ids = _ids(model, text)
        if len(ids) <= 62:  # one window: the whole document given BOS
            assert ll == pytest.approx(_direct_ll(model, [], ids), rel=1e-5)
        else:
            assert ll == pytest.approx(_rolling_direct(model, ids), rel=1e-5)


def _rolling_direct(model, ids: list[int]) -> float:
    """Disjoint windows of 63 = BOS + context + predicted tokens (+ the block's EOS at 63): the first predicts 62
    tokens, later ones 61 given the one before (the last one: the rest, given as many preceding tokens as fit)."""
    total, start = 0.0, 0
    while start < len(ids):
        pred = ids[start:start + (62 if start == 0 else 61)]
        total += _direct_ll(model, ids[max(0, start - (62 - len(pred))):start], pred)
        start += len(pred)
    return total


def test_generate_until_matches_direct_generate(run, checkpoints):
    variant, model, payload = run
    samples = payload["samples"]["dlm_toy_generate"]
    harness = DLMHarness(str(checkpoints[variant]), mc_num=MC, steps=8, device="cpu")
    for sample in samples:
        context, gen_kwargs = sample["arguments"][0]
        text = sample["filtered_resps"][0]
        assert text == harness.generate_text(context, dict(gen_kwargs))
        assert "\n" not in text and len(text) <= 12
    sample = min(samples, key=lambda s: len(s["arguments"][0][0]))  # an independent path through generate()
    context = sample["arguments"][0][0]
    prompt = [model.tokenizer.bos_token_id, *_ids(model, context)]
    ids = torch.tensor([prompt + [0] * 12])
    known = torch.arange(ids.shape[1])[None] < len(prompt)
    sampler = get_sampler("autoregressive" if variant == "ar" else "ancestral", temperature=0.0)
    x = generate(model, model.process, sampler, steps=8, prompt=ids, prompt_mask=known,
                 generator=torch.Generator().manual_seed(request_seed(0, prompt)))
    new = x[0, len(prompt):].tolist()
    new = new[:new.index(model.tokenizer.eos_token_id)] if model.tokenizer.eos_token_id in new else new
    assert sample["filtered_resps"][0] == model.tokenizer.decode(new, skip_special_tokens=True).split("\n")[0]


@pytest.mark.parametrize("variant", ["udlm", "sedd"])
def test_uniform_and_score_entropy_checkpoints_score_continuations(variant, checkpoints):
    harness = DLMHarness(str(checkpoints[variant]), mc_num=8, device="cpu")
    model = harness.model
    request = Instance("loglikelihood", {}, ("ROMEO:\nBut soft", " what light"), 0)
    (ll, greedy), = harness.loglikelihood([request], disable_tqdm=True)
    context = [model.tokenizer.bos_token_id, *_ids(model, "ROMEO:\nBut soft")]
    gen = torch.Generator().manual_seed(request_seed(0, context, _ids(model, " what light")))
    x0 = torch.tensor([[model.tokenizer.bos_token_id, *_ids(model, "ROMEO:\nBut soft what light")]])
    target = torch.arange(x0.shape[1])[None] >= x0.shape[1] - len(_ids(model, " what light"))
    assert ll == pytest.approx(-float(conditional_elbo(model, model.process, x0, target, n_t=8, generator=gen)),
                               rel=1e-5)
    assert ll < 0 and greedy is False


def test_masked_is_greedy_follows_most_confident_unmasking(checkpoints):
    harness = DLMHarness(str(checkpoints["mdlm"]), mc_num=4, device="cpu", greedy=True)
    model, mask = harness.model, harness.model.process.mask_id
    prefix = [model.tokenizer.bos_token_id, *_ids(model, "ROMEO:\nBut soft")]
    x = torch.tensor([prefix + [mask] * 4])
    with torch.no_grad():
        for _ in range(4):  # unmask the most confident masked position with its argmax, one at a time
            confidence, token = model(x, (x == mask).float().mean(-1)).log_probs.max(-1)
            position = int(confidence.masked_fill(x != mask, float("-inf")).argmax())
            x[0, position] = token[0, position]
    greedy = model.tokenizer.decode(x[0, len(prefix):].tolist())
    other = "".join("a" if ch != "a" else "b" for ch in greedy)
    requests = [Instance("loglikelihood", {}, ("ROMEO:\nBut soft", c), 0) for c in (greedy, other)]
    results = harness.loglikelihood(requests, disable_tqdm=True)
    assert [flag for _, flag in results] == [True, False]


LONG = ("MENENIUS:\nEither you must confess yourselves wondrous malicious, or be accused of folly. I shall tell "
        "you a pretty tale: it may be you have heard it; but, since it serves my purpose, I will venture to stale 't a "
        "little")


def _eos_at_last_position(model) -> None:
    """Make the AR model put p(EOS) ~ 1 at position L-1 (as wrap-mode training teaches it), whatever the input."""
    predict, eos = model.objective.predict, model.tokenizer.eos_token_id

    def predict_eos_last(logits, xt, t):
        if logits.shape[1] == 64:  # position 62 predicts the token at 63 = L-1
            logits = logits.clone()
            logits[:, 62] = -30.0
            logits[:, 62, eos] = 30.0
        return predict(logits, xt, t)

    model.objective.predict = predict_eos_last


def test_requests_are_placed_like_training_blocks_for_every_family(checkpoints):
    """An AR model that always predicts EOS at L-1 scores a window-filling request and a rolling document exactly
    as when the request is placed like a training block ([BOS] + 62 tokens + [EOS]) and as the unmodified model:
    no real token is ever scored at L-1. Diffusion requests use the same layout (the EOS at L-1 is clean context)."""
    plain = DLMHarness(str(checkpoints["ar"]), device="cpu")
    eos_last = DLMHarness(str(checkpoints["ar"]), device="cpu")
    _eos_at_last_position(eos_last.model)
    model = plain.model
    context, continuation = _ids(model, LONG[:-7]), _ids(model, LONG[-7:])
    assert len(context) + len(continuation) > 63  # the request overflows the window: the context is cut
    ll, _ = eos_last.score(context, continuation)
    assert ll == pytest.approx(_direct_ll(model, context, continuation), rel=1e-6)
    assert ll == pytest.approx(plain.score(context, continuation)[0], rel=1e-6)
    rolling = [Instance("loglikelihood_rolling", {}, (LONG,), 0)]
    assert eos_last.loglikelihood_rolling(rolling, disable_tqdm=True)[0] == pytest.approx(
        plain.loglikelihood_rolling(rolling, disable_tqdm=True)[0], rel=1e-6)
    assert eos_last.loglikelihood_rolling(rolling, disable_tqdm=True)[0] == pytest.approx(
        _rolling_direct(model, _ids(model, LONG)), rel=1e-6)
    mdlm = DLMHarness(str(checkpoints["mdlm"]), mc_num=MC, device="cpu")
    assert mdlm.score(context, continuation)[0] == pytest.approx(_direct_ll(mdlm.model, context, continuation),
                                                                 rel=1e-5)


def test_greedy_check_runs_on_loglikelihood_requests_only(checkpoints, monkeypatch):
    harness = DLMHarness(str(checkpoints["mdlm"]), mc_num=2, device="cpu", greedy=True)
    calls = []
    original = harness._greedy_match
    monkeypatch.setattr(harness, "_greedy_match", lambda x0, target: calls.append(1) or original(x0, target))
    harness.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (LONG,), 0)], disable_tqdm=True)
    assert calls == []  # rolling windows never need is_greedy
    harness.loglikelihood([Instance("loglikelihood", {}, ("ROMEO:\nBut soft", " what"), 0)], disable_tqdm=True)
    assert calls == [1]


def test_generation_steps_default_to_one_per_new_token(checkpoints):
    model = DLMHarness(str(checkpoints["mdlm"]), device="cpu").model  # generate_until's default: Sampler.token_steps
    assert model.objective.sampler("ancestral").token_steps(16) == 16
    assert model.objective.sampler("ancestral", block_size=4).token_steps(10) == 12  # 3 blocks
    kwargs = {"until": ["\n"], "max_gen_toks": 12}
    default = DLMHarness(str(checkpoints["mdlm"]), device="cpu").generate_text("ROMEO:\nBut", dict(kwargs))
    explicit = DLMHarness(str(checkpoints["mdlm"]), device="cpu", steps=12).generate_text("ROMEO:\nBut", dict(kwargs))
    assert default == explicit


def test_generation_takes_sampler_options_and_reports_its_cost(checkpoints):
    """sampler=confidence:threshold=0 (as lm-eval's model_args give it) fills the 12 positions in one call; the
    fixed quota spends `steps`; get_model_info reports both."""
    kwargs = {"until": ["\n"], "max_gen_toks": 12}
    fast = DLMHarness.create_from_arg_string(f"pretrained={checkpoints['mdlm']},sampler=confidence:threshold=0;"
                                             "temperature=0", {"device": "cpu"})
    fixed = DLMHarness(str(checkpoints["mdlm"]), device="cpu", sampler="confidence", steps=6)
    for harness in (fast, fixed):
        harness.generate_text("ROMEO:\nBut", dict(kwargs))
        harness.generate_text("JULIET:\nO", dict(kwargs))
    cost = fast.get_model_info()["generation"]
    assert (cost["nfe"], cost["tokens"]) == (2, 24) and cost["tokens_per_s"] > 0
    assert fixed.get_model_info()["generation"]["nfe"] == 12


def test_oov_tokens_are_counted_and_can_be_excluded(checkpoints):
    harness = DLMHarness(str(checkpoints["ar"]), device="cpu")
    excluded = DLMHarness(str(checkpoints["ar"]), device="cpu", exclude_oov="true")
    model = harness.model
    unk = model.tokenizer.unk_token_id
    context, continuation = _ids(model, "ROMEO:\nBut soft"), _ids(model, " what € light")  # '€' is not in the vocab
    assert continuation.count(unk) == 1
    full, _ = harness.score(context, continuation)
    part, _ = excluded.score(context, continuation)
    x = torch.tensor([[model.tokenizer.bos_token_id, *context, *continuation]])
    with torch.no_grad():
        nll = model.objective.token_nll(model, x)[0]  # position l-1 predicts token l
    unk_cost = float(nll[len(context) + continuation.index(unk)])
    assert part == pytest.approx(full + unk_cost, rel=1e-6) and unk_cost > 1
    info = harness.get_model_info()
    assert (info["oov_tokens"], info["continuation_tokens"], info["exclude_oov"]) == (1, len(continuation), False)
    assert info["cpu_threads"] >= 1 and info["dlm_layout"]["end_id"] == model.tokenizer.eos_token_id


def _lm_eval_arguments(checkpoint, out: Path) -> list[str]:
    """lm_eval's own flags, with its default device made explicit: cuda:0, absent on a CPU machine."""
    return ["--model", "dlm", "--model_args", f"pretrained={checkpoint}", "--tasks", "dlm_toy_loglikelihood",
            "--include_path", str(REPO / "tests/eval/fixtures"), "--device", "cuda:0", "--output_path", str(out)]


def _check_lm_eval_output(out: Path, stderr: str) -> None:
    (result,) = out.glob("**/results_*.json")
    saved = json.loads(result.read_text())
    assert saved["results"]["dlm_toy_loglikelihood"]["perplexity,none"] > 1
    assert saved["config"]["cpu_threads"] >= 1 and saved["config"]["oov_tokens"] == 0
    if not torch.cuda.is_available():
        assert "CUDA is not available; evaluating on cpu" in stderr


def test_lm_eval_entry_is_the_lm_eval_command_line_with_dlm_registered(checkpoints, tmp_path, monkeypatch, capsys):
    """dlm.eval.lm_eval_entry.main (the dlm-lm-eval script) in-process; lm-eval's own ~10k task YAMLs are not indexed
    to keep it fast (the slow test below runs the installed script as a user would)."""
    from lm_eval.tasks import TaskManager

    from dlm.eval.lm_eval_entry import main

    init = TaskManager.__init__
    no_defaults = lambda self, *a, **k: init(self, *a, **(k | {"include_defaults": False}))  # noqa: E731
    monkeypatch.setattr(TaskManager, "__init__", no_defaults)
    monkeypatch.setattr(sys, "argv", ["dlm-lm-eval", *_lm_eval_arguments(checkpoints["ar"], tmp_path / "out")])
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    assert main() == 0
    _check_lm_eval_output(tmp_path / "out", capsys.readouterr().err)


@pytest.mark.slow
def test_installed_dlm_lm_eval_script_runs_a_local_task_offline_on_cpu(checkpoints, tmp_path):
    script = Path(sys.executable).with_name("dlm-lm-eval")
    assert script.is_file(), "reinstall dlm (pip install -e '.[eval]') to get the dlm-lm-eval console script"
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([str(script), *_lm_eval_arguments(checkpoints["ar"], tmp_path / "out")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    _check_lm_eval_output(tmp_path / "out", done.stderr)
