"""Attention masks and the attention itself against naive references: causal, padding and block semantics."""

import math

import torch

from dlm.model.attention import Attention, attention_mask
from dlm.model.rotary import Rotary


def naive_mask(padding, query_positions, n_keys, causal):
    """The rule of attention_mask, one entry at a time (True = may attend)."""
    B = padding.shape[0]
    out = torch.zeros(B, 1, query_positions.shape[1], n_keys, dtype=torch.bool)
    for b in range(B):
        for i, q in enumerate(query_positions[b].tolist()):
            for j in range(n_keys):
                if not causal:
                    out[b, 0, i, j] = bool(padding[b, j])
                elif not bool(padding[b, q]):  # a padding query sees every key (no empty softmax row)
                    out[b, 0, i, j] = True
                else:
                    out[b, 0, i, j] = j <= q and bool(padding[b, j])
    return out


def naive_attention(attn: Attention, x, cos, sin, mask):
    """softmax(q k^T / sqrt(D) masked) v with the module's weights, in float64, head by head."""
    B, L, d = x.shape
    H, D = attn.n_heads, attn.head_dim
    q, k, v = attn.qkv(x).double().view(B, L, 3, H, D).permute(2, 0, 3, 1, 4)
    half = D // 2
    theta = torch.arange(L, dtype=torch.float64)[:, None] * 10000.0 ** (-torch.arange(half, dtype=torch.float64)
                                                                         * 2 / D)  # (L, D/2), RoFormer angles
    c, s = theta.cos(), theta.sin()

    def rotate(t):  # pair (t_j, t_{j + D/2}) rotated by theta_j
        a, b = t[..., :half], t[..., half:]
        return torch.cat([a * c - b * s, b * c + a * s], -1)

    scores = rotate(q) @ rotate(k).transpose(-1, -2) / math.sqrt(D)
    scores = scores.masked_fill(~mask, float("-inf"))
    y = torch.softmax(scores, -1) @ v
    return attn.out(y.transpose(1, 2).reshape(B, L, d).float())


def module(seed=0, d=16, heads=2):
    torch.manual_seed(seed)
    return Attention(d, heads, layer=0).eval()


def test_mask_matches_the_naive_rule():
    padding = torch.tensor([[True] * 5 + [False] * 2, [False, False] + [True] * 5, [True] * 7])
    queries = torch.tensor([[0, 3, 5, 6], [0, 1, 2, 6], [6, 0, 2, 4]])
    for causal in (False, True):
        got = attention_mask(padding, queries, 7, causal=causal).expand(3, 1, 4, 7)
        assert torch.equal(got, naive_mask(padding, queries, 7, causal))
    every = torch.arange(7).expand(3, 7)
    assert torch.equal(attention_mask(padding, None, 7, causal=True), naive_mask(padding, every, 7, True))
    assert attention_mask(None, None, 7, causal=True) is None  # nothing masked: the is_causal fast path


def test_causal_attention_matches_naive_and_ignores_the_future():
    attn, x = module(), torch.randn(2, 6, 16)
    cos, sin = Rotary(8)(torch.arange(6))
    causal = torch.ones(6, 6, dtype=torch.bool).tril()
    y = attn(x, cos, sin, causal=True)
    torch.testing.assert_close(y, naive_attention(attn, x, cos, sin, causal), atol=1e-5, rtol=1e-5)
    x2 = x.clone()
    x2[:, 4:] = torch.randn(2, 2, 16)  # change the future of position 3
    assert torch.equal(attn(x2, cos, sin, causal=True)[:, :4], y[:, :4])
    assert not torch.allclose(attn(x2, cos, sin, causal=True)[:, 4:], y[:, 4:])


def test_padding_keys_are_never_attended():
    attn, x = module(1), torch.randn(2, 5, 16)
    cos, sin = Rotary(8)(torch.arange(5))
    padding = torch.tensor([[True, True, True, False, False], [True] * 5])
    mask = attention_mask(padding, None, 5, causal=False)
    y = attn(x, cos, sin, causal=False, attn_mask=mask)
    torch.testing.assert_close(y, naive_attention(attn, x, cos, sin, mask), atol=1e-5, rtol=1e-5)
    x2 = x.clone()
    x2[0, 3:] = 100 * torch.randn(2, 16)  # whatever the padding holds
    torch.testing.assert_close(attn(x2, cos, sin, causal=False, attn_mask=mask)[0, :3], y[0, :3])


def test_a_block_diagonal_mask_runs_each_block_alone():
    """Block layout (semi-AR / cache): block k's output is attention over block k only, at its own positions."""
    attn, x = module(2), torch.randn(1, 7, 16)
    cos, sin = Rotary(8)(torch.arange(7))
    blocks = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    mask = (blocks[:, None] == blocks[None, :])[None, None]
    y = attn(x, cos, sin, causal=False, attn_mask=mask)
    first = attn(x[:, :3], cos[:3], sin[:3], causal=False)
    second = attn(x[:, 3:], cos[3:], sin[3:], causal=False)
    torch.testing.assert_close(y, torch.cat([first, second], 1), atol=1e-6, rtol=1e-5)
