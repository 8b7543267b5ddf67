"""Why grid tasks train with model.learned_positions: a rotary-only backbone sees offsets only, so shifting every
position by k leaves its output unchanged (it cannot tell in which Sudoku row or box a cell lies except through
content anchors); the learned absolute table breaks that symmetry and survives a save/load round trip."""

import pytest
import torch

import dlm
from dlm.config import ModelConfig
from dlm.model.transformer import Transformer

CFG = dict(d_model=32, n_layers=2, n_heads=2, max_len=64)


def _logits(model, tokens, shift):
    positions = torch.arange(tokens.shape[1]) + shift
    return model(tokens, positions=positions)


@pytest.mark.parametrize("learned", [False, True])
def test_only_learned_positions_see_absolute_position(learned):
    torch.manual_seed(0)
    model = Transformer(ModelConfig(**CFG, learned_positions=learned), 8, 8, time_conditioning=False,
                        causal=False).eval()
    if learned:  # std 0.02 init is small: make the table matter as it does after training
        torch.nn.init.normal_(model.position_embed.weight, std=1.0)
    tokens = torch.randint(0, 8, (3, 16))
    with torch.no_grad():
        base, shifted = _logits(model, tokens, 0), _logits(model, tokens, 17)
    if learned:
        assert (base - shifted).abs().max() > 1e-2
    else:
        torch.testing.assert_close(base, shifted, rtol=0, atol=1e-4)


def test_learned_positions_round_trip(tmp_path):
    cfg = dlm.load_config(None, [f"model.{k}={v}" for k, v in CFG.items()] + ["model.learned_positions=true"])
    model = dlm.DiffusionLM.from_config(cfg, vocab_size=11, mask_id=3)
    assert any("position_embed" in name for name, _ in model.named_parameters())
    model.save_pretrained(tmp_path)
    loaded = dlm.DiffusionLM.from_pretrained(tmp_path)
    x = torch.randint(0, 11, (2, 20)).masked_fill(torch.rand(2, 20) < 0.5, 3)
    t = torch.full((2,), 0.5)
    torch.testing.assert_close(loaded.eval()(x, t).log_probs, model.eval()(x, t).log_probs, rtol=0, atol=0)
    default = dlm.DiffusionLM.from_config(dlm.load_config(None, [f"model.{k}={v}" for k, v in CFG.items()]),
                                          vocab_size=11, mask_id=3)
    assert not any("position_embed" in name for name, _ in default.named_parameters())  # old checkpoints load
