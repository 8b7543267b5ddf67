"""The backbone's fast paths equal the plain math they replace, forward and gradient, to float rounding: the
sigmoid-form tanh GELU (dlm/model/activation.py) and the complex rotary on interleaved q/k (dlm/model/rotary.py)."""

import math

import torch
import torch.nn.functional as F

from dlm.config import ModelConfig
from dlm.model.activation import TanhGELU, gelu_tanh
from dlm.model.attention import Attention
from dlm.model.rotary import Rotary, apply_rotary, interleave_qk, rotate_qkv
from dlm.model.transformer import Transformer


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


def pairs_adjacent(x):
    """(..., D) rotate-half layout -> pair j = (x_j, x_{j + D/2}) at dims (2j, 2j + 1)."""
    return x.unflatten(-1, (2, -1)).transpose(-1, -2).flatten(-2)


def test_interleaved_rotation_is_the_rotate_half_rotation_reordered():
    """rotate_qkv on q/k with pairs interleaved = apply_rotary in the rotate-half layout, reordered the same way;
    gradients (the hand-written inverse rotation) included, for shared and per-row angles, float32 and float64."""
    gen = torch.Generator().manual_seed(1)
    B, L, H, D = 2, 5, 3, 8
    rotary = Rotary(D)
    shared = rotary(torch.tensor([0, 1, 2, 7, 30]))
    per_row = tuple(a.view(B, L, D) for a in rotary(torch.tensor([[0, 1, 2, 3, 4], [9, 3, 5, 6, 40]]).reshape(-1)))
    for dtype, tol in ((torch.float32, 1e-6), (torch.float64, 1e-12)):
        qkv = torch.randn(B, L, 3, H, D, generator=gen, dtype=dtype, requires_grad=True)
        for cos, sin in (shared, per_row):
            angles = (cos[:, None], sin[:, None]) if cos.dim() == 3 else (cos, sin)  # (B, 1, L, D) per row
            q, k, v = qkv.permute(2, 0, 3, 1, 4)
            want = [pairs_adjacent(apply_rotary(q, *angles)), pairs_adjacent(apply_rotary(k, *angles)), v]
            got = rotate_qkv(interleave_qk(qkv, 2), cos, sin, interleaved=True)
            weights = [torch.randn(want[0].shape, generator=gen, dtype=dtype) for _ in range(3)]
            for a, b in zip(got, want):
                torch.testing.assert_close(a, b, rtol=tol, atol=tol)
            grad = torch.autograd.grad(sum((a * w).sum() for a, w in zip(got, weights)), qkv)[0]
            plain = torch.autograd.grad(sum((a * w).sum() for a, w in zip(want, weights)), qkv)[0]
            torch.testing.assert_close(grad, plain, rtol=tol, atol=tol)


def test_interleave_qk_permutes_only_q_and_k():
    t = torch.arange(3 * 2 * 4).view(3, 2, 4)  # (3, H=2, D=4)
    out = interleave_qk(t, 0)
    assert out[0, 0].tolist() == [0, 2, 1, 3] and out[1, 1].tolist() == [12, 14, 13, 15]  # (j, j + D/2) adjacent
    assert torch.equal(out[2], t[2])  # v untouched


def naive_attention(attn, x, positions, causal):
    """softmax(rot(q) rot(k)^T / sqrt(D)) v in float64 with the module's stored (rotate-half) weights."""
    B, L, d = x.shape
    H, D = attn.n_heads, attn.head_dim
    q, k, v = (x.double() @ attn.qkv.weight.double().T).view(B, L, 3, H, D).permute(2, 0, 3, 1, 4)
    cos, sin = (a.double() for a in Rotary(D)(positions))
    scores = apply_rotary(q, cos, sin) @ apply_rotary(k, cos, sin).transpose(-1, -2) / math.sqrt(D)
    if causal:
        scores = scores.masked_fill(torch.ones(L, L, dtype=torch.bool).triu(1), float("-inf"))
    y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, L, d)
    return y @ attn.out.weight.double().T


def test_attention_on_interleaved_projections_equals_the_plain_attention_and_its_weight_gradient():
    """The stored qkv weight keeps the rotate-half layout (checkpoints load unchanged): outputs and the weight's
    gradient equal the plain float64 attention computed from it."""
    torch.manual_seed(2)
    attn = Attention(32, 2, layer=0).eval()
    x = torch.randn(2, 9, 32)
    positions = torch.arange(9) + 3
    for causal in (False, True):
        y = attn(x, *Rotary(16)(positions), causal=causal)
        want = naive_attention(attn, x, positions, causal)
        torch.testing.assert_close(y.double(), want, rtol=1e-5, atol=1e-5)
        w = torch.randn(y.shape)
        got_grad = torch.autograd.grad((y * w).sum(), attn.qkv.weight)[0]
        want_grad = torch.autograd.grad((want * w.double()).sum(), attn.qkv.weight)[0]
        torch.testing.assert_close(got_grad.double(), want_grad.double(), rtol=1e-4, atol=1e-5)


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
