"""dlm/pretrained.py (the checkpoint format below DiffusionLM) names the AutoModel class of dlm/hf/ without importing
it, and builds whatever class loads it; the objectives build themselves and their process from a RunConfig."""

import json

import pytest
import torch

import dlm
from dlm.hf import DLMForDiffusionLM
from dlm.objectives import ScoreEntropy
from dlm.pretrained import ARCHITECTURE, load_pretrained
from dlm.process import Capability, LogLinear, Uniform
from dlm.registry import ConfigError

TINY = ["model.d_model=32", "model.n_layers=2", "model.n_heads=2", "model.max_len=32"]


def test_config_names_the_automodel_class_and_loads_the_calling_class(tmp_path):
    assert ARCHITECTURE == DLMForDiffusionLM.__name__
    model = dlm.DiffusionLM.from_config(dlm.load_config(None, TINY), vocab_size=11, mask_id=3)
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == [ARCHITECTURE]

    class Subclass(dlm.DiffusionLM):
        pass

    loaded = load_pretrained(Subclass, tmp_path)
    assert type(loaded) is Subclass and loaded.process.mask_id == 3 and loaded.process.width == 11
    x = torch.randint(0, 11, (2, 8)).masked_fill(torch.rand(2, 8) < 0.5, 3)
    t = torch.full((2,), 0.5)
    torch.testing.assert_close(loaded.eval()(x, t).log_probs, model.eval()(x, t).log_probs, rtol=0, atol=0)


def test_score_entropy_needs_a_process_that_defines_it():
    class NoScore(Uniform):
        capabilities = Uniform.capabilities - {Capability.SCORE_ENTROPY}

    cfg = dlm.load_config(None, TINY + ["objective.name=score_entropy", "objective.time_conditioning=true"])
    with pytest.raises(ConfigError, match=r"needs a process with \['score_entropy'\]"):
        ScoreEntropy(NoScore(5, LogLinear()), cfg.objective)
    assert ScoreEntropy(Uniform(5, LogLinear()), cfg.objective).process.width == 5


def test_loading_a_checkpoint_with_its_tokenizer_prints_no_transformers_warning(tmp_path):
    """In a fresh process (dlm.hf not imported, so "dlm" is no registered AutoConfig type), as `dlm sample` loads."""
    import subprocess
    import sys

    from dlm.data.tokenizer import build_tokenizer

    tokenizer = build_tokenizer("char", texts=["to be or not to be"])
    cfg = dlm.load_config(None, ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.cond_dim=16",
                                 "model.max_len=16"])
    dlm.DiffusionLM.from_config(cfg, len(tokenizer), tokenizer=tokenizer).save_pretrained(str(tmp_path / "ckpt"))
    ckpt = str(tmp_path / "ckpt")
    code = f"import dlm; m = dlm.DiffusionLM.from_pretrained({ckpt!r}); print(m.tokenizer.encode('to be'))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(tokenizer.encode("to be"))
    assert "instantiate a model of type" not in run.stderr, run.stderr  # AutoTokenizer re-read config.json
