"""Names renamed because they misled keep working for a while, with a DeprecationWarning naming the new one."""

import importlib

import pytest
import torch

from tests.tiny_models import tiny_model

RENAMED = [("dlm.objectives", "Autoregressive", "AutoregressiveObjective"),
           ("dlm.sample", "Autoregressive", "AutoregressiveSampler"),
           ("dlm.sample.autoregressive", "Autoregressive", "AutoregressiveSampler"),
           ("dlm.model.transformer", "Block", "TransformerBlock"),
           ("dlm.sample.semi_ar", "Block", "DecodeBlock")]


@pytest.mark.parametrize("module, old, new", RENAMED)
def test_old_class_names_warn_and_resolve_to_the_new_class(module, old, new):
    mod = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=new):
        assert getattr(mod, old) is getattr(mod, new)


def test_old_model_methods_warn_and_return_the_same():
    model = tiny_model("masked_elbo").eval()
    xt, t = torch.randint(0, 10, (2, 8)), torch.full((2,), 0.5)
    with pytest.warns(DeprecationWarning, match="logits"):
        raw = model(xt, t, raw=True)
    torch.testing.assert_close(raw, model.logits(xt, t))
    with pytest.warns(DeprecationWarning, match="forward_positions"):
        old = model._forward(xt, t)
    torch.testing.assert_close(old.log_probs, model.forward_positions(xt, t).log_probs)
