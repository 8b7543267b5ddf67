"""model.attention=flex: FlexAttention's BlockMask of the two-stream pattern gives the SDPA logits (CPU: forward
only, FlexAttention has no CPU backward) and, on a GPU, the SDPA gradients."""

import warnings

import pytest
import torch

from tests.block.helpers import tiny_block_model, tokens

pytest.importorskip("torch.nn.attention.flex_attention", reason="this torch has no FlexAttention")


def two_stream_logits(attention: str, block_size: int, device: str, grad: bool):
    model = tiny_block_model(block_size, f"model.attention={attention}", dtype=torch.float32).to(device)
    objective, x0 = model.objective, tokens(2).to(device)
    t = objective.block_times(2, 16, (0.0, 1.0), generator=torch.Generator().manual_seed(0)).to(device)
    xt = objective.corrupt(x0, t, generator=torch.Generator(device).manual_seed(1))
    with warnings.catch_warnings(), torch.set_grad_enabled(grad):
        warnings.simplefilter("ignore")  # eager (uncompiled) FlexAttention warns
        logits = objective.two_stream_logits(model.logits, xt, x0, t)
        if grad:
            logits.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None] if grad else []
    return logits.detach(), grads


@pytest.mark.parametrize("block_size", [1, 4])
def test_flex_attention_equals_sdpa_on_the_two_stream_forward(block_size):
    flex, _ = two_stream_logits("flex", block_size, "cpu", grad=False)
    sdpa, _ = two_stream_logits("sdpa", block_size, "cpu", grad=False)
    torch.testing.assert_close(flex, sdpa, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="FlexAttention's backward needs a GPU")
def test_flex_attention_gradients_equal_sdpa_on_a_gpu():
    flex, flex_grads = two_stream_logits("flex", 4, "cuda", grad=True)
    sdpa, sdpa_grads = two_stream_logits("sdpa", 4, "cuda", grad=True)
    torch.testing.assert_close(flex, sdpa, rtol=1e-4, atol=1e-4)
    for ours, theirs in zip(flex_grads, sdpa_grads, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-3, atol=1e-5)
