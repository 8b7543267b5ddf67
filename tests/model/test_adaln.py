"""adaLN-Zero (DiT, arXiv 2212.09748): a freshly built time-conditioned block is the identity map, the fresh backbone
ignores the time, and the zero-initialized modulation still gets a gradient (so it can learn)."""

import torch

from dlm.config import ModelConfig
from dlm.model.rotary import Rotary
from dlm.model.transformer import Transformer, TransformerBlock

CFG = ModelConfig(d_model=32, n_layers=2, n_heads=2, cond_dim=16, max_len=16)


def test_a_fresh_conditioned_block_is_the_identity():
    torch.manual_seed(0)
    block = TransformerBlock(CFG, layer=0, conditioned=True)
    x, c = torch.randn(3, 5, 32), torch.randn(3, 16)
    cos, sin = Rotary(16)(torch.arange(5))
    assert torch.equal(block(x, c, cos, sin, causal=False), x)
    plain = TransformerBlock(CFG, layer=0, conditioned=False)  # without adaLN the residual branches act at once
    assert not torch.allclose(plain(x, None, cos, sin, causal=False), x)


def test_a_fresh_backbone_ignores_the_time_but_can_learn_it():
    torch.manual_seed(0)
    model = Transformer(CFG, vocab_in=11, vocab_out=11, time_conditioning=True, causal=False)
    tokens = torch.randint(0, 11, (2, 7))
    y = model(tokens, torch.tensor([0.1, 3.0]))
    assert torch.equal(y, model(tokens, torch.tensor([5.0, 0.0])))
    expected = model.head(torch.nn.functional.layer_norm(model.embed(tokens), (32,))).float()
    torch.testing.assert_close(y, expected)  # every block the identity, the final modulation none
    y.square().sum().backward()
    assert float(model.blocks[0].adaln.weight.grad.abs().sum()) > 0
    assert float(model.final_adaln.weight.grad.abs().sum()) > 0
