"""lm-eval end-to-end on the offline toy tasks (tests/eval/fixtures): the harness numbers equal direct calls of
conditional_elbo / the exact AR likelihood / generate."""

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
    """-bound (exact for AR) of continuation | BOS + context, with the harness's per-request seed."""
    prefix = [model.tokenizer.bos_token_id, *context]
    x0 = torch.tensor([prefix + continuation])
    target = torch.zeros_like(x0, dtype=torch.bool)
    target[:, len(prefix):] = True
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
        if len(ids) <= 63:  # one window: the whole document given BOS
            assert ll == pytest.approx(_direct_ll(model, [], ids), rel=1e-5)
        else:
            assert ll == pytest.approx(_rolling_direct(model, ids), rel=1e-5)


def _rolling_direct(model, ids: list[int]) -> float:
    """Disjoint windows of 64 = BOS + context + predicted tokens: the first predicts 63 tokens, later ones 62
    given the one before (the last one: the rest, given as many preceding tokens as fit)."""
    total, start = 0.0, 0
    while start < len(ids):
        pred = ids[start:start + (63 if start == 0 else 62)]
        total += _direct_ll(model, ids[max(0, start - (63 - len(pred))):start], pred)
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
