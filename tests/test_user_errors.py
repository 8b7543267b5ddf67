"""The error battery: every malformed input a user can type gives ONE line `<what> <why> <what to do>`.

Python API cases must raise ConfigError whose message holds the fragment and no newline; CLI cases run
`dlm.cli.main(argv)` and must exit with status 2, print exactly one `error: ...` line holding the fragment as the
last line on stderr, and never a traceback.
"""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

import dlm
from dlm.cli import main
from dlm.config import load_config
from dlm.data import build_tokenizer
from dlm.eval.likelihood import elbo
from dlm.registry import ConfigError
from dlm.sample import generate, get_sampler
from dlm.sample.text_infill import parse_infill_template

TINY = ["model.d_model=32", "model.n_layers=2", "model.n_heads=2", "model.max_len=32", "data.seq_len=16"]
TEXT = "to be or not to be, that is the question\nwhether tis nobler in the mind to suffer\n"


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer("char", texts=[TEXT])


@pytest.fixture(scope="module")
def masked(tokenizer):
    torch.manual_seed(0)
    return dlm.DiffusionLM.from_config(load_config(None, TINY), len(tokenizer), tokenizer=tokenizer).eval()


@pytest.fixture(scope="module")
def dirs(tmp_path_factory, masked, tokenizer):
    """Checkpoint dirs: masked, ar, gpt2 (a foreign config.json), resized (config.json of another size), broken."""
    root = tmp_path_factory.mktemp("ckpts")
    masked.save_pretrained(str(root / "masked"))
    ar_cfg = load_config(None, [*TINY, "objective.name=autoregressive"])
    dlm.DiffusionLM.from_config(ar_cfg, len(tokenizer), tokenizer=tokenizer).save_pretrained(str(root / "ar"))
    shutil.copytree(root / "masked", root / "gpt2")
    (root / "gpt2" / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 768, "vocab_size": 50257}))
    shutil.copytree(root / "masked", root / "resized")
    config = json.loads((root / "resized" / "config.json").read_text())
    config["run"]["model"]["d_model"] = 64
    (root / "resized" / "config.json").write_text(json.dumps(config))
    shutil.copytree(root / "masked", root / "broken")
    weights = root / "broken" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:64])
    return root


def _ids(*shape, value=1):
    return torch.full(shape, value, dtype=torch.long)


API_CASES = {
    "loss on 1-D tokens": (lambda m: m.loss(_ids(8)), "must have shape (batch, length), got (8,)"),
    "loss on 3-D tokens": (lambda m: m.loss(_ids(2, 8, 1)), "must have shape (batch, length), got (2, 8, 1)"),
    "loss on float tokens": (lambda m: m.loss(torch.ones(2, 8)), "must be an integer tensor, got torch.float32"),
    "loss on an empty batch": (lambda m: m.loss(_ids(0, 8)), "empty batch of shape (0, 8)"),
    "loss on a negative id": (lambda m: m.loss(_ids(2, 8, value=-1)), "token id -1 is negative"),
    "loss on a too large id": (lambda m: m.loss(_ids(2, 8, value=999)), "token id 999 is out of range"),
    "loss with a wrong mask shape": (lambda m: m.loss(_ids(2, 8), attention_mask=torch.ones(2, 7, dtype=torch.bool)),
                                     "attention_mask has shape (2, 7) but the tokens have (2, 8)"),
    "loss on the mask id": (lambda m: m.loss(_ids(2, 8, value=m.process.mask_id)), "out of range for vocab_size"),
    "elbo n_t=0": (lambda m: m.elbo(_ids(2, 8), n_t=0), "n_t must be at least 1, got 0"),
    "elbo n_t=-2": (lambda m: m.elbo(_ids(2, 8), n_t=-2), "n_t must be at least 1, got -2"),
    "elbo on an empty batch": (lambda m: m.elbo(_ids(0, 8)), "empty batch"),
    "elbo with a wrong mask shape": (lambda m: elbo(m, m.process, _ids(2, 8), attention_mask=torch.ones(1, 8)),
                                     "attention_mask has shape (1, 8)"),
    "generate shape (0, 16)": (lambda m: m.generate(steps=4, shape=(0, 16)), "shape[0] (batch) must be at least 1"),
    "generate shape (2, 0)": (lambda m: m.generate(steps=4, shape=(2, 0)), "shape[1] (length) must be at least 1"),
    "generate steps=0": (lambda m: m.generate(steps=0, shape=(2, 8)), "steps must be at least 1, got 0"),
    "generate a float prompt": (lambda m: m.generate(steps=4, shape=(1, 8), prompt=torch.ones(1, 3)),
                                "prompt must be an integer tensor of token ids"),
    "temperature=nan": (lambda m: get_sampler("ancestral", temperature=math.nan),
                        "temperature must be a finite number"),
    "top_p out of range": (lambda m: get_sampler("ancestral", top_p=2.0), "0 < top_p <= 1"),
    "unknown sampler option": (lambda m: get_sampler("ancestral", steps=3), "has no option 'steps'"),
    "unknown sampler": (lambda m: generate(m, m.process, "ancestrall", steps=2, shape=(1, 4)),
                        "unknown sampler 'ancestrall' (did you mean 'ancestral'?)"),
    "t of the wrong batch size": (lambda m: m(_ids(2, 8), torch.rand(3)), "t has shape (3,) for a batch of 2"),
    "block_size with too few steps": (lambda m: m.generate(get_sampler("ancestral", block_size=3), steps=2,
                                                           shape=(1, 8)), "must be a multiple of the number of blocks"),
    "too long a sequence": (lambda m: m.generate(steps=2, shape=(1, 64)), "exceeds the model's max_len=32"),
    "infill outside the vocab": (lambda m: parse_infill_template("to bé <mask:3> or", m.tokenizer),
                                 "characters the model's tokenizer does not know: 'é'"),
    "infill without a span": (lambda m: parse_infill_template("to be", m.tokenizer), "no <mask:N> span"),
    "infill with a broken span": (lambda m: parse_infill_template("to <mask:> be", m.tokenizer),
                                  "malformed placeholder"),
    "override that is not YAML": (lambda m: load_config(None, ["train.betas=[0.9,"]), "the value is not valid YAML"),
    "override without =": (lambda m: load_config(None, ["train.lr"]), "must look like section.key=value"),
    "train.lr=nan": (lambda m: load_config(None, ["train.lr=nan"]), "expects a finite number, got 'nan'"),
    "unknown config key": (lambda m: load_config(None, ["model.d_modl=3"]), "did you mean 'd_model'?"),
}


def _raises_one_line(call, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        call()
    message = str(info.value)
    assert fragment in message and "\n" not in message, message


@pytest.mark.parametrize("case", list(API_CASES))
def test_api_errors_are_one_line(case, masked):
    call, fragment = API_CASES[case]
    _raises_one_line(lambda: call(masked), fragment)


LOAD_CASES = {
    "a GPT-2 config.json": ("gpt2", "is not a dlm checkpoint (config.json has model_type 'gpt2'"),
    "a config.json of another size": ("resized", "model.safetensors does not match config.json (size mismatch"),
    "truncated weights": ("broken", "model.safetensors is corrupt"),
    "no such directory": ("missing", "checkpoint directory not found"),
}


@pytest.mark.parametrize("case", list(LOAD_CASES))
def test_loading_errors_are_one_line(case, dirs):
    name, fragment = LOAD_CASES[case]
    _raises_one_line(lambda: dlm.DiffusionLM.from_pretrained(str(dirs / name)), fragment)


LM_EVAL_CASES = {
    "mc_num=abc": ("pretrained={masked},mc_num=abc", "mc_num must be a positive integer, got 'abc'"),
    "mc_num=0": ("pretrained={masked},mc_num=0", "mc_num must be at least 1, got 0"),
    "an unknown arg": ("pretrained={masked},foo=1", "unknown argument 'foo'"),
    "no pretrained": ("mc_num=4", "missing required argument 'pretrained'"),
}


@pytest.mark.parametrize("case", list(LM_EVAL_CASES))
def test_lm_eval_model_args_are_one_line(case, dirs):
    pytest.importorskip("lm_eval", reason="lm-eval is not installed (pip install 'dlm[eval]')")
    from dlm.eval.harness import DLMHarness

    args, fragment = LM_EVAL_CASES[case]
    _raises_one_line(lambda: DLMHarness.create_from_arg_string(args.format(masked=dirs / "masked"), {"device": "cpu"}),
                     fragment)


CLI_CASES = {
    "sample --length 0": (["sample", "--checkpoint", "{masked}", "--length", "0"], "--length must be at least 1"),
    "sample --num-samples 0": (["sample", "--checkpoint", "{masked}", "--num-samples", "0"],
                               "--num-samples must be at least 1"),
    "sample --steps 0": (["sample", "--checkpoint", "{masked}", "--steps", "0"], "--steps must be at least 1"),
    "sample --temperature nan": (["sample", "--checkpoint", "{masked}", "--temperature", "nan", "--steps", "2"],
                                 "temperature must be a finite number"),
    "sample --temperature -1": (["sample", "--checkpoint", "{masked}", "--temperature", "-1", "--steps", "2"],
                                "temperature=-1.0 is out of range: need temperature >= 0 (--temperature of"),
    "sample a GPT-2 dir": (["sample", "--checkpoint", "{gpt2}"], "is not a dlm checkpoint"),
    "sample a resized dir": (["sample", "--checkpoint", "{resized}"], "does not match config.json"),
    "sample a missing dir": (["sample", "--checkpoint", "{root}/nope"], "checkpoint directory not found"),
    "sample too long": (["sample", "--checkpoint", "{masked}", "--length", "64", "--steps", "2"],
                        "exceeds the model's max_len=32"),
    "sample unknown sampler": (["sample", "--checkpoint", "{masked}", "--sampler", "eular"],
                               "unknown sampler 'eular' (did you mean 'euler'?)"),
    "sample block_size and steps": (["sample", "--checkpoint", "{masked}", "--length", "8", "--block-size", "3",
                                     "--steps", "2", "--num-samples", "1"], "multiple of the number of blocks"),
    "sample cfg without condition": (["sample", "--checkpoint", "{masked}", "--cfg-scale", "2", "--steps", "2"],
                                     "cfg_scale needs a condition"),
    "infill on an AR checkpoint": (["infill", "--checkpoint", "{ar}", "--text", "to <mask:3> be"],
                                   "decodes only with the autoregressive sampler (left to right)"),
    "infill outside the vocab": (["infill", "--checkpoint", "{masked}", "--text", "to bé <mask:3>"],
                                 "does not know: 'é'"),
    "infill without a span": (["infill", "--checkpoint", "{masked}", "--text", "to be"], "no <mask:N> span"),
    "train a missing config": (["train", "--config", "{root}/none.yaml"], "config file not found"),
    "train an override that is not YAML": (["train", "--config", "{yaml}", "train.betas=[1,"], "not valid YAML"),
    "train train.lr=nan": (["train", "--config", "{yaml}", "train.lr=nan"], "expects a finite number"),
    "train train.on_nonfinite=bogus": (["train", "--config", "{yaml}", "train.on_nonfinite=bogus"],
                                       "train.on_nonfinite='bogus' must be one of: stop, skip"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_errors_exit_2_with_one_error_line(case, dirs, capsys):
    argv, fragment = CLI_CASES[case]
    yaml_file = dirs / "run.yaml"
    yaml_file.write_text("model: tiny\ndata:\n  seq_len: 32\ntrain:\n  steps: 2\n  progress: false\n")
    places = {name: str(dirs / name) for name in ("masked", "ar", "gpt2", "resized")}
    argv = [arg.format(root=dirs, yaml=yaml_file, **places) for arg in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0], err
    assert err.rstrip().splitlines()[-1] == errors[0] and "Traceback" not in err  # the bar was closed first


def test_the_battery_is_large_enough():
    assert len(API_CASES) + len(LOAD_CASES) + len(LM_EVAL_CASES) + len(CLI_CASES) >= 40


def test_lm_eval_unknown_task_is_one_line(dirs, capsys, monkeypatch):
    pytest.importorskip("lm_eval", reason="lm-eval is not installed (pip install 'dlm[eval]')")
    import lm_eval.tasks

    class Index:  # lm-eval's task index without the ~20 s of reading every task YAML
        def __init__(self, include_path=None, include_defaults=True):
            self.all_tasks = ["lambada_openai", "piqa"]

        def match_tasks(self, names):
            return [name for name in names if name in self.all_tasks]

    monkeypatch.setattr(lm_eval.tasks, "TaskManager", Index)
    assert main(["lm-eval", "--model-args", f"pretrained={dirs / 'masked'}", "--tasks", "piqa,no_such_task"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: unknown lm-eval task(s): no_such_task; `lm-eval ls tasks` lists them (--include-path "
                   "adds a folder of task YAMLs)"]


def test_cli_version_and_per_flag_help(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"dlm {dlm.__version__}"
    with pytest.raises(SystemExit):
        main(["sample", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "entropy_bounded, first_hitting or remdm, options after a colon" in help_text  # the whole sampler list
    assert "--num-samples NUM_SAMPLES how many sequences. (default: 4)" in help_text
    assert "--show-steps print how sample 0 fills in" in help_text
    with pytest.raises(SystemExit):  # a description continued on the next line of the Args: section
        main(["eval", "ppl", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--mode MODE how documents become blocks (default: the model's training data config)." in help_text
    assert "--max-blocks MAX_BLOCKS blocks per dataset (0 = all). (default: 0)" in help_text


def test_infill_keeps_the_users_space(tokenizer):
    prompt, known = parse_infill_template("to be <mask:2> or", tokenizer)
    assert tokenizer.decode(prompt[0][known[0]].tolist()) == "to be  or"  # both spaces kept, around the span
    assert known[0].tolist() == [True] * 6 + [False] * 2 + [True] * 3


def test_sample_texts_keep_document_breaks(tokenizer):
    from dlm.sample.commands import _decode
    from dlm.sample.show_steps import token_decoder

    eos = tokenizer.eos_token_id
    ids = tokenizer.encode("to be", add_special_tokens=False) + [eos] + tokenizer.encode("or\nnot",
                                                                                         add_special_tokens=False)
    assert _decode(tokenizer, ids) == "to be\nor\nnot"
    assert "".join(map(token_decoder(tokenizer), ids)) == "to be|or⏎not"  # one display row per state


def test_eval_ppl_reads_the_data_dir_from_the_environment(dirs, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DLM_DATA_DIR", str(tmp_path / "local"))
    assert main(["eval", "ppl", "--checkpoint", str(dirs / "masked"), "--datasets", "ptb@test"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and str(tmp_path / "local" / "ptb") in err, err
