"""The lm-eval adapter on block-diffusion checkpoints (dlm/eval/harness.py): at block size 1 with the window [1, 1]
loglikelihood, loglikelihood_rolling, is_greedy and greedy generate_until are the exact autoregressive chain rule
of the model (checked against one forward per token); at larger blocks a request that ends inside a block keeps
the rest of the block masked. Tiny random models, no download."""

import pytest
import torch

import dlm
from dlm.data import build_tokenizer
from dlm.data.paths import CORPUS_DIR
from dlm.registry import ConfigError
from dlm.sample import generate
from dlm.utils.cross_entropy import nll_from_logits

lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is not installed (pip install 'dlm[eval]')")
from lm_eval.api.instance import Instance  # noqa: E402

from dlm.eval.harness import DLMHarness, request_seed  # noqa: E402

SEQ_LEN = 32
CONTEXT, CONTINUATION = "ROMEO:\nBut soft", " what light"
LONG = "MENENIUS:\nEither you must confess yourselves wondrous malicious, or be accused of folly."


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer("char", [(CORPUS_DIR / "tinyshakespeare.txt").read_text()])


def checkpoint(tmp_path, tokenizer, block_size: int, *extra: str) -> str:
    torch.manual_seed(0)
    cfg = dlm.load_config(None, ["model.d_model=32", "model.n_layers=2", "model.n_heads=2", f"model.max_len={SEQ_LEN}",
                                 f"data.seq_len={SEQ_LEN}", "objective.name=block_diffusion",
                                 f"objective.block_size={block_size}", *extra])
    model = dlm.DiffusionLM.from_config(cfg, vocab_size=len(tokenizer), tokenizer=tokenizer)
    path = tmp_path / f"block{block_size}"
    model.save_pretrained(str(path))
    return str(path)


EXACT = ("objective.clip=[1.0,1.0]",)


def next_token_logits(model, prefix: list[int]) -> torch.Tensor:
    """(N,) the b = 1 model's logits for the token after `prefix`: the position masked after the clean prefix."""
    window = torch.tensor([prefix + [model.objective.mask_id]])
    return model.logits(window)[0, -1]


def chain_rule_ll(model, ids: list[int], start: int) -> float:
    """sum_{j >= start} log p(ids_j | ids_{<j}), one forward per token."""
    mask = model.objective.mask_id
    total = 0.0
    with torch.no_grad():
        for j in range(start, len(ids)):
            logits = next_token_logits(model, ids[:j])
            total -= float(nll_from_logits(logits[None], torch.tensor([ids[j]]), exclude=mask))
    return total


def greedy_tokens(model, prefix: list[int], n: int) -> list[int]:
    out = list(prefix)
    with torch.no_grad():
        for _ in range(n):
            logits = next_token_logits(model, out)
            logits[model.objective.mask_id] = float("-inf")
            out.append(int(logits.argmax()))
    return out[len(prefix):]


def test_block_size_1_loglikelihood_is_the_exact_chain_rule_for_every_seed(tmp_path, tokenizer):
    path = checkpoint(tmp_path, tokenizer, 1, *EXACT)
    harnesses = [DLMHarness(path, mc_num=4, device="cpu", seed=seed) for seed in (0, 1)]
    request = Instance("loglikelihood", {}, (CONTEXT, CONTINUATION), 0)
    (ll, _), = harnesses[0].loglikelihood([request], disable_tqdm=True)
    (other, _), = harnesses[1].loglikelihood([request], disable_tqdm=True)
    harness = harnesses[0]
    placed = harness.layout.place(harness.tok_encode(CONTEXT), harness.tok_encode(CONTINUATION))
    assert ll == other  # no Monte Carlo
    assert ll == pytest.approx(chain_rule_ll(harness.model, placed.ids[:placed.stop], placed.start), rel=1e-5)


def test_block_size_1_rolling_loglikelihood_is_the_exact_chain_rule_of_each_window(tmp_path, tokenizer):
    path = checkpoint(tmp_path, tokenizer, 1, *EXACT)
    harness = DLMHarness(path, mc_num=4, device="cpu")
    (short, long), = [harness.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (text,), 0)
                                                     for text in ("But soft", LONG)], disable_tqdm=True)]
    bos = harness.layout.start_id
    assert short == pytest.approx(chain_rule_ll(harness.model, [bos, *harness.tok_encode("But soft")], 1), rel=1e-5)
    windows = harness.rolling_windows(LONG)
    assert len(windows) > 2  # the document needs several windows of the 32-token layout
    expected = 0.0
    for context, continuation in windows:
        placed = harness.layout.place(context, continuation)
        expected += chain_rule_ll(harness.model, placed.ids[:placed.stop], placed.start)
    assert long == pytest.approx(expected, rel=1e-5)


def test_block_size_1_is_greedy_and_generation_follow_the_argmax_chain(tmp_path, tokenizer):
    path = checkpoint(tmp_path, tokenizer, 1, *EXACT)
    harness = DLMHarness(path, mc_num=4, device="cpu", greedy=True)
    model, context = harness.model, harness.tok_encode(CONTEXT)
    prefix = harness.layout.place(context, []).ids
    greedy = greedy_tokens(model, prefix, 4)
    other = greedy[:3] + [(greedy[3] + 1) % len(tokenizer)]
    assert harness.score(context, greedy, greedy=True)[1] is True
    assert harness.score(context, other, greedy=True)[1] is False
    new = greedy_tokens(model, prefix, 6)
    eos = tokenizer.eos_token_id
    new = new[:new.index(eos)] if eos in new else new
    text = harness.generate_text(CONTEXT, {"until": [], "max_gen_toks": 6})
    assert text == tokenizer.decode(new, skip_special_tokens=True)


def test_a_continuation_ending_inside_a_block_keeps_the_rest_of_the_block_masked(tmp_path, tokenizer):
    harness = DLMHarness(checkpoint(tmp_path, tokenizer, 4), mc_num=4, device="cpu")
    model = harness.model
    context, continuation = harness.tok_encode(CONTEXT), harness.tok_encode(CONTINUATION)
    placed = harness.layout.place(context, continuation)
    n = len(placed.ids)
    assert n % 4 and placed.stop == n  # the request ends inside a block
    seen, logits = [], model.logits

    def spy(tokens, t=None, **kwargs):
        seen.append(tokens[:, :tokens.shape[1] // 2])  # the x_t half
        return logits(tokens, t, **kwargs)

    model.logits = spy
    ll, _ = harness.score(context, continuation)
    noisy = torch.cat(seen)
    assert noisy.shape == (4, n + (-n % 4))  # mc_num draws over whole blocks
    assert (noisy[:, n:] == model.objective.mask_id).all()  # the rest of the last block: always masked
    assert torch.equal(noisy[:, :placed.start], torch.tensor([placed.ids[:placed.start]]).expand(4, -1))
    assert (noisy[:, placed.start:n] == model.objective.mask_id).any()
    model.logits = logits
    x0, target = placed.tensor(), placed.target()
    generator = torch.Generator().manual_seed(request_seed(0, placed.ids[:placed.start], continuation))
    with torch.no_grad():
        direct = model.objective.conditional_elbo(model, x0, target, n_t=4, generator=generator)
    assert ll == pytest.approx(-float(direct), rel=1e-6)


def test_block_generation_decodes_whole_blocks_with_the_block_sampler(tmp_path, tokenizer):
    harness = DLMHarness(checkpoint(tmp_path, tokenizer, 4), mc_num=4, device="cpu")
    model = harness.model
    text = harness.generate_text(CONTEXT, {"until": ["\n"], "max_gen_toks": 6, "do_sample": True, "temperature": 1.0})
    placed = harness.layout.place(harness.tok_encode(CONTEXT), [0] * 6)
    ids = torch.tensor([placed.ids + [0] * (-len(placed.ids) % 4)])
    known = torch.arange(ids.shape[1])[None] < placed.start
    generator = torch.Generator().manual_seed(request_seed(0, placed.ids[:placed.start]))
    with torch.no_grad():
        x = generate(model, model.process, model.objective.sampler("ancestral", temperature=1.0), steps=4,
                     prompt=ids, prompt_mask=known, generator=generator)
    new = x[0, placed.start:placed.stop].tolist()
    eos = tokenizer.eos_token_id
    new = new[:new.index(eos)] if eos in new else new
    assert text == tokenizer.decode(new, skip_special_tokens=True).split("\n")[0]
    assert harness.model.objective.sampler(harness.sampler).token_steps(6) == 4  # steps are per block: one per token
    with pytest.raises(ConfigError, match="without blocks"):
        DLMHarness(checkpoint(tmp_path, tokenizer, 4), device="cpu", cfg_scale=1.0)


def test_is_greedy_on_blocks_decodes_the_rest_of_the_last_block_and_compares_the_continuation(tmp_path, tokenizer):
    harness = DLMHarness(checkpoint(tmp_path, tokenizer, 4), mc_num=2, device="cpu", greedy=True)
    model, context = harness.model, harness.tok_encode(CONTEXT)
    placed = harness.layout.place(context, [0] * 5)
    assert len(placed.ids) % 4  # the continuation ends inside a block
    ids = torch.tensor([placed.ids + [0] * (-len(placed.ids) % 4)])
    known = torch.arange(ids.shape[1])[None] < placed.start
    with torch.no_grad():  # the confidence sampler at temperature 0, one token per step within each block
        x = generate(model, model.process, model.objective.sampler("confidence", temperature=0.0), steps=4,
                     prompt=ids, prompt_mask=known)
    greedy = x[0, placed.start:placed.stop].tolist()
    other = greedy[:4] + [(greedy[4] + 1) % len(tokenizer)]
    assert harness.score(context, greedy, greedy=True)[1] is True
    assert harness.score(context, other, greedy=True)[1] is False
