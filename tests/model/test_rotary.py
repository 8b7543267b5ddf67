"""Rotary positions (RoFormer, arXiv 2104.09864): a naive rotation by angle m * base^(-2j/D) of each pair
(x_j, x_{j + D/2}), and the relative-position property: q.k scores depend only on the offset n - m."""

import torch

from dlm.model.attention import Attention
from dlm.model.rotary import Rotary, apply_rotary, rotate_qkv


def naive_rotary(x, positions, base=10000.0):
    """x (L, D): pair j of row m rotated by theta = m * base^(-2j/D), in float64 (the rotate-half pairing)."""
    L, D = x.shape
    out = x.double().clone()
    for m, pos in enumerate(positions.tolist()):
        for j in range(D // 2):
            theta = pos * base ** (-2 * j / D)
            a, b = float(x[m, j]), float(x[m, j + D // 2])
            out[m, j] = a * torch.cos(torch.tensor(theta, dtype=torch.float64)) - b * torch.sin(
                torch.tensor(theta, dtype=torch.float64))
            out[m, j + D // 2] = b * torch.cos(torch.tensor(theta, dtype=torch.float64)) + a * torch.sin(
                torch.tensor(theta, dtype=torch.float64))
    return out


def test_matches_the_naive_rotation():
    torch.manual_seed(0)
    x, positions = torch.randn(5, 8), torch.tensor([0, 1, 2, 7, 30])
    cos, sin = Rotary(8)(positions)
    got = apply_rotary(x[None, None], cos, sin)[0, 0]
    torch.testing.assert_close(got.double(), naive_rotary(x, positions), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got, rolled_rotary(x, cos, sin))  # the sign-folded roll form of the docstring
    assert torch.equal(apply_rotary(x[None, None], *Rotary(8)(torch.zeros(5)))[0, 0], x)  # position 0: identity


def test_scores_depend_only_on_the_offset():
    torch.manual_seed(1)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)
    rotary = Rotary(16)

    def score(m, n):
        cq, sq = rotary(torch.tensor([m]))
        ck, sk = rotary(torch.tensor([n]))
        return float((apply_rotary(q, cq, sq) * apply_rotary(k, ck, sk)).sum())

    for m, n in [(0, 3), (5, 1), (2, 2)]:
        for shift in (1, 17, 100):
            assert abs(score(m, n) - score(m + shift, n + shift)) < 1e-4
    assert abs(score(0, 3) - score(0, 4)) > 1e-3  # and they do depend on it


def test_attention_is_invariant_to_shifting_every_position():
    torch.manual_seed(2)
    attn, x = Attention(16, 2, layer=0).eval(), torch.randn(2, 6, 16)
    rotary = Rotary(8)
    y = attn(x, *rotary(torch.arange(6)), causal=True)
    torch.testing.assert_close(attn(x, *rotary(torch.arange(6) + 40), causal=True), y, atol=1e-4, rtol=1e-4)


def rolled_rotary(x, cos, sin_signed):
    """The module docstring's formula, x * cos + roll(x, D/2) * sin_signed, in plain autograd ops."""
    return x * cos + x.roll(x.shape[-1] // 2, dims=-1) * sin_signed


def plain_rotate_qkv(qkv, cos, sin):
    """What rotate_qkv fuses: split (B, L, 3, H, D) into q, k, v (B, H, L, D) and rotate q and k."""
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    if cos.dim() == 3:  # per row (B, L, D) -> (B, 1, L, D)
        cos, sin = cos[:, None], sin[:, None]
    return rolled_rotary(q, cos, sin), rolled_rotary(k, cos, sin), v


def test_rotate_qkv_equals_the_plain_rotation_and_its_gradient():
    """The fused node gives apply_rotary's q, k (and v untouched), shared or per-row angles, and its hand-written
    backward (the inverse rotation, stacked with v's gradient) passes gradcheck."""
    gen = torch.Generator().manual_seed(3)
    B, L, H, D = 2, 5, 3, 8
    qkv = torch.randn(B, L, 3, H, D, generator=gen, dtype=torch.float64, requires_grad=True)
    rotary = Rotary(D)
    shared = rotary(torch.tensor([0, 1, 2, 7, 30]))
    per_row = tuple(a.view(B, L, D) for a in rotary(torch.tensor([[0, 1, 2, 3, 4], [9, 3, 5, 6, 40]]).reshape(-1)))
    for cos, sin in (shared, per_row):
        cos, sin = cos.double(), sin.double()
        got, want = rotate_qkv(qkv, cos, sin), plain_rotate_qkv(qkv, cos, sin)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        weights = [torch.randn(a.shape, generator=gen, dtype=torch.float64) for a in got]
        grad = torch.autograd.grad(sum((a * w).sum() for a, w in zip(got, weights)), qkv)[0]
        plain = torch.autograd.grad(sum((a * w).sum() for a, w in zip(want, weights)), qkv)[0]
        torch.testing.assert_close(grad, plain, rtol=1e-12, atol=1e-12)
        assert torch.autograd.gradcheck(lambda x, c=cos, s=sin: rotate_qkv(x, c, s), (qkv,))
