"""Class-conditional backbone: the label embedding, the null class, condition dropout and checkpoints."""

import pytest
import torch

import dlm
from dlm.guidance import drop_labels
from dlm.registry import ConfigError
from tests.cache.helpers import tiny_model


def test_label_none_is_the_null_class_and_labels_change_the_output():
    model = tiny_model("model.num_classes=3", sharpen=4.0)
    xt = torch.randint(0, 12, (2, 10), generator=torch.Generator().manual_seed(0))
    xt[:, ::2] = model.process.mask_id  # SUBS carries unmasked tokens over whatever the label
    with torch.no_grad():
        null = model(xt, label=torch.tensor([3, 3])).log_probs
        assert torch.equal(model(xt).log_probs, null)
        assert not torch.allclose(model(xt, label=torch.tensor([0, 1])).log_probs, null)
    with pytest.raises(ConfigError, match="label"):
        model(xt, label=torch.tensor([4, 0]))
    with pytest.raises(ConfigError, match="no class labels"):
        tiny_model()(xt, label=torch.tensor([0, 0]))


def test_conditional_loss_reaches_the_label_embedding():
    model = tiny_model("model.num_classes=2").train()
    x0 = torch.randint(0, 11, (4, 12), generator=torch.Generator().manual_seed(0))
    label = drop_labels(torch.tensor([0, 1, 0, 1]), 0.5, 2, generator=torch.Generator().manual_seed(1))
    model.loss(x0, label=label, generator=torch.Generator().manual_seed(2)).loss.backward()
    grad = model.backbone.label_embed.weight.grad
    used = torch.zeros(3, dtype=torch.bool)
    used[label] = True
    assert bool((grad[used].abs().sum(-1) > 0).all()) and bool((grad[~used] == 0).all())


def test_drop_labels_rate():
    label = torch.zeros(100000, dtype=torch.long)
    dropped = drop_labels(label, 0.3, 5, generator=torch.Generator().manual_seed(0))
    assert set(dropped.unique().tolist()) == {0, 5} and abs(float((dropped == 5).double().mean()) - 0.3) < 0.005
    assert torch.equal(drop_labels(label, 0.0, 5), label) and bool((drop_labels(label, 1.0, 5) == 5).all())


def test_class_conditional_checkpoint_roundtrip(tmp_path):
    model = tiny_model("model.num_classes=3", sharpen=4.0)
    model.save_pretrained(str(tmp_path / "ckpt"))
    loaded = dlm.DiffusionLM.from_pretrained(str(tmp_path / "ckpt")).eval()
    assert loaded.config.model.num_classes == 3
    xt = torch.full((2, 10), model.process.mask_id)
    label = torch.tensor([2, 0])
    with torch.no_grad():
        assert torch.equal(loaded(xt, label=label).log_probs, model(xt, label=label).log_probs)


def test_sample_command_with_label_guidance_and_cache(tmp_path, capsys):
    from dlm.sample.commands import infill_command, sample_command

    model = tiny_model("model.num_classes=3", sharpen=4.0)
    model.save_pretrained(str(tmp_path / "ckpt"))
    texts = sample_command(str(tmp_path / "ckpt"), sampler="confidence", steps=4, num_samples=2, length=8,
                           cfg_scale=2.0, label=1, temperature=0.0)
    assert len(texts) == 2 and texts[0] == texts[1]
    cached = sample_command(str(tmp_path / "ckpt"), sampler="confidence", steps=4, num_samples=2, length=8,
                            cache="dkv_decode", label=1, temperature=0.0)
    assert len(cached) == 2
    with pytest.raises(ConfigError, match="needs a condition"):
        sample_command(str(tmp_path / "ckpt"), steps=4, num_samples=1, length=8, cfg_scale=1.0)
    with pytest.raises(ConfigError, match="KV cache"):
        sample_command(str(tmp_path / "ckpt"), steps=4, num_samples=1, length=8, cfg_scale=1.0, label=0,
                       cache="prefix")
    with pytest.raises(ConfigError, match="tokenizer"):  # infill takes cfg_scale too, but needs a tokenizer
        infill_command(str(tmp_path / "ckpt"), "a <mask:2>", cfg_scale=1.0)
