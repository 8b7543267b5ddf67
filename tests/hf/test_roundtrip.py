"""save_pretrained -> from_pretrained gives identical logits, loads through AutoModel, and trains further."""

import json

import pytest
import torch
from transformers import AutoConfig, AutoModel

import dlm
import dlm.hf  # noqa: F401  (registers the Auto classes)
from dlm.registry import ConfigError

TINY = ["model.d_model=32", "model.n_layers=2", "model.n_heads=2", "model.max_len=32"]
VARIANTS = {
    "mdlm": ["objective.name=masked_elbo"],
    "udlm": ["objective.name=uniform_elbo", "process.name=uniform", "objective.time_conditioning=true"],
    "sedd": ["objective.name=score_entropy", "objective.time_conditioning=true"],
    "ar": ["objective.name=autoregressive"],
    "bd3lm": ["objective.name=block_diffusion", "objective.block_size=8"],
}


def _model(variant: str, seed: int = 0) -> dlm.DiffusionLM:
    torch.manual_seed(seed)
    return dlm.DiffusionLM.from_config(dlm.load_config(None, TINY + VARIANTS[variant]), vocab_size=11)


def _outputs(model, x, t):
    pred = model(x, t if model.objective.time_conditioning else None)
    return pred.log_probs if pred.log_probs is not None else pred.log_score


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_roundtrip_identical_logits(tmp_path, variant):
    model = _model(variant).eval()
    # train a step first so the weights are not the (partly zero) initialization
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x0 = torch.randint(0, 11, (4, 16), generator=torch.Generator().manual_seed(1))
    model.loss(x0, generator=torch.Generator().manual_seed(2)).loss.backward()
    opt.step()
    model.save_pretrained(tmp_path)
    loaded = dlm.DiffusionLM.from_pretrained(tmp_path).eval()
    xt = torch.randint(0, model.objective.input_width, (3, 16), generator=torch.Generator().manual_seed(3))
    t = torch.rand(3, generator=torch.Generator().manual_seed(4))
    assert torch.equal(_outputs(model, xt, t), _outputs(loaded, xt, t))
    auto = AutoModel.from_pretrained(tmp_path).eval()
    assert torch.equal(_outputs(model, xt, t), _outputs(auto.model, xt, t))
    assert AutoConfig.from_pretrained(tmp_path).run["objective"]["name"] == model.config.objective.name


def test_loaded_model_trains_like_the_original(tmp_path):
    model = _model("mdlm")
    model.save_pretrained(tmp_path)
    loaded = dlm.DiffusionLM.from_pretrained(tmp_path)
    x0 = torch.randint(0, 11, (8, 16), generator=torch.Generator().manual_seed(5))
    losses = []
    for m in (model, loaded):
        opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
        curve = []
        for _ in range(5):
            out = m.loss(x0, generator=torch.Generator().manual_seed(0))  # same t and mask: a fixed objective
            opt.zero_grad()
            out.loss.backward()
            opt.step()
            curve.append(out.loss.item())
        losses.append(curve)
    assert losses[0] == losses[1]
    assert losses[1][-1] < losses[1][0]


def test_missing_checkpoint_is_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        dlm.DiffusionLM.from_pretrained(tmp_path / "nope")
    with pytest.raises(ConfigError, match="no config.json"):
        dlm.DiffusionLM.from_pretrained(tmp_path)


def test_corrupt_checkpoint_is_one_line_error(tmp_path):
    _model("mdlm").save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(ConfigError, match="corrupt"):
        dlm.DiffusionLM.from_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["run"]["model"]["n_layerz"] = 3
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="n_layerz"):
        dlm.DiffusionLM.from_pretrained(tmp_path)
