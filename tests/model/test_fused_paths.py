"""The backbone's fast GELU equals the plain math it replaces, forward and gradient, to float rounding
(dlm/model/activation.py), and leaves the parameter names and the computed logits of a reloaded backbone alone.
(The fused rotary node has its own test in test_rotary.py, the whole fused step in tests/core/test_lean_losses.py.)"""

import torch
import torch.nn.functional as F

from dlm.config import ModelConfig
from dlm.model.activation import TanhGELU, gelu_tanh
from dlm.model.transformer import Transformer
from tests.tiny_models import assert_same_step, seeded_step


def test_gelu_tanh_equals_torchs_tanh_gelu_and_its_gradients():
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(4, 7, 33, generator=gen) * 3).requires_grad_()
    want = F.gelu(x, approximate="tanh")
    got = gelu_tanh(x)
    torch.testing.assert_close(got, want, rtol=2e-6, atol=2e-6)
    w = torch.randn(want.shape, generator=gen)
    torch.testing.assert_close(torch.autograd.grad((got * w).sum(), x)[0], torch.autograd.grad((want * w).sum(), x)[0])
    x64 = torch.randn(3, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(gelu_tanh(x64), F.gelu(x64, approximate="tanh"), rtol=1e-13, atol=1e-13)
    assert torch.autograd.gradcheck(gelu_tanh, (x64,))
    assert torch.autograd.gradgradcheck(gelu_tanh, (x64,))  # the backward is torch's own, differentiable
    half = torch.randn(6, dtype=torch.bfloat16)
    assert torch.equal(TanhGELU()(half), F.gelu(half, approximate="tanh"))  # half precision: torch's kernel


def test_state_dict_keys_and_outputs_survive_a_reload():
    """Same parameter names as before the fast paths (mlp.0 / mlp.2 around a parameter-free GELU), and a backbone
    loaded from another's state dict computes the same logits."""
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=2, cond_dim=16, max_len=16)
    torch.manual_seed(3)
    a = Transformer(cfg, vocab_in=11, vocab_out=11, time_conditioning=False, causal=False)
    assert {k for k in a.state_dict() if ".mlp." in k} == {f"blocks.{i}.mlp.{j}.{p}" for i in range(2)
                                                          for j in (0, 2) for p in ("weight", "bias")}
    b = Transformer(cfg, vocab_in=11, vocab_out=11, time_conditioning=False, causal=False)
    b.load_state_dict(a.state_dict())
    tokens = torch.randint(0, 11, (2, 7))
    assert torch.equal(a(tokens), b(tokens))


def test_training_step_with_the_fast_gelu_equals_the_one_with_torchs():
    """A seeded loss and every parameter gradient of a DiffusionLM are those of the same model with nn.GELU."""
    x0 = torch.randint(0, 9, (4, 24), generator=torch.Generator().manual_seed(0))

    def gelu_of(plain: bool):
        def prepare(model):
            if plain:
                for block in model.backbone.blocks:
                    block.mlp[1] = torch.nn.GELU(approximate="tanh")
            assert any(isinstance(m, TanhGELU) for m in model.modules()) != plain
        return prepare

    assert_same_step(seeded_step("masked_elbo", x0, gelu_of(False)), seeded_step("masked_elbo", x0, gelu_of(True)))
