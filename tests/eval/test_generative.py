"""Generative perplexity under a reference LM (our AR checkpoint or a HF causal LM) and unigram entropy."""

import json
import math

import pytest
import torch

import dlm
from dlm.eval.commands import genppl_command
from dlm.eval.generative import ReferenceLM, generative_perplexity, sample_texts, unigram_entropy
from dlm.registry import ConfigError

TEXTS = ["First Citizen:\nSpeak, speak.", "All:\nResolved. resolved.",
         "MENENIUS:\nEither you must confess yourselves wondrous malicious, or be accused of folly. I shall tell you "
         "a pretty tale: it may be you have heard it."]  # the last one spans three 64-token windows


def test_unigram_entropy():
    assert unigram_entropy([0, 0, 1, 1]) == pytest.approx(math.log(2))
    assert unigram_entropy(torch.tensor([[0, 0, 0, 0], [0, 1, 2, 3]])) == pytest.approx(math.log(4) / 2)
    assert unigram_entropy([[5, 5], [1, 2]]) == pytest.approx(math.log(2) / 2)
    assert unigram_entropy([]) == 0.0


def _direct_nll(model, ids: list[int], width: int) -> float:
    """Sum of exact AR NLLs over disjoint windows [s, s + width), s = 0, width - 1, ..."""
    total = 0.0
    for start in range(0, len(ids) - 1, width - 1):
        total += float(model.elbo(torch.tensor([ids[start:start + width]])))
    return total


def test_token_weighted_generative_perplexity_matches_direct_ar_scoring(checkpoints):
    ar = dlm.DiffusionLM.from_pretrained(checkpoints["ar"]).eval()
    result = generative_perplexity(TEXTS, str(checkpoints["ar"]))
    tok = ar.tokenizer
    ids = [[tok.bos_token_id] + tok(t, add_special_tokens=False)["input_ids"] for t in TEXTS]
    nlls = [_direct_nll(ar, i, 64) for i in ids]
    tokens = sum(len(i) - 1 for i in ids)
    assert result["num_tokens"] == tokens and len(ids[2]) > 2 * 63
    assert result["gen_ppl"] == pytest.approx(math.exp(sum(nlls) / tokens), rel=1e-6)
    per_sample = [math.exp(n / (len(i) - 1)) for n, i in zip(nlls, ids)]  # SEDD's aggregation
    assert result["gen_ppl_sample_mean"] == pytest.approx(sum(per_sample) / 3, rel=1e-6)


def test_hugging_face_causal_lm_reference(checkpoints, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = dlm.DiffusionLM.from_pretrained(checkpoints["ar"]).tokenizer
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=32, n_embd=16, n_layer=1, n_head=2)).eval()
    hf.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    ref = ReferenceLM.load(str(tmp_path), "cpu")
    assert ref.max_length == 32
    ids = ref.encode(TEXTS[0])
    logits = hf(input_ids=torch.tensor([ids])).logits.log_softmax(-1)[0, :-1]
    direct = -float(logits.detach().gather(-1, torch.tensor(ids[1:])[:, None]).sum())
    assert generative_perplexity(TEXTS[:1], ref)["gen_nll"] == pytest.approx(direct / (len(ids) - 1), rel=1e-5)


def test_reference_must_be_causal(checkpoints):
    with pytest.raises(ConfigError, match="diffusion model"):
        ReferenceLM.load(str(checkpoints["mdlm"]))


def test_genppl_command_samples_scores_and_records(checkpoints, tmp_path):
    payload = genppl_command(str(checkpoints["mdlm"]), str(checkpoints["ar"]), num_samples=4, length=32, steps=8,
                             seed=1, out=str(tmp_path / "g.json"))
    saved = json.loads((tmp_path / "g.json").read_text())
    result = saved["result"]
    assert result["num_samples"] == 4 and len(saved["samples"]) == 4 and result["length"] == 32
    assert result["gen_ppl"] > 1 and 0 < result["entropy"] <= math.log(32)
    assert saved["provenance"]["arguments"]["seed"] == 1 and result["weights_sha256"]
    again = genppl_command(str(checkpoints["mdlm"]), str(checkpoints["ar"]), num_samples=4, length=32, steps=8,
                           seed=1, out=str(tmp_path / "h.json"))
    assert again["samples"] == payload["samples"]  # seeded sampling reproduces the samples


def test_autoregressive_samples_decode_left_to_right(checkpoints):
    """The AR checkpoint made (by a hook on its logits) to put almost all mass on next = follow(previous token):
    the samples must be the chain BOS, follow(BOS), follow(follow(BOS)), ..., which only a left-to-right decode
    that reads each token's predecessor produces."""
    model = dlm.DiffusionLM.from_pretrained(checkpoints["ar"]).eval()
    letters = torch.tensor(model.tokenizer("abcdefg", add_special_tokens=False)["input_ids"])

    def follow(tokens):  # (...) -> (...): a letter picked by the previous token
        return letters[tokens % len(letters)]

    def hook(module, args, logits):
        return logits + 40.0 * torch.nn.functional.one_hot(follow(args[0]), logits.shape[-1])

    handle = model.backbone.register_forward_hook(hook)
    try:
        samples = sample_texts(model, num_samples=3, length=24, steps=4, seed=0)
    finally:
        handle.remove()
    chain = [model.tokenizer.bos_token_id]
    for _ in range(23):
        chain.append(int(follow(torch.tensor(chain[-1]))))
    assert samples.sampler == "autoregressive"
    assert samples.ids.tolist() == [chain] * 3
    assert samples.texts == [model.tokenizer.decode(chain, skip_special_tokens=True)] * 3
