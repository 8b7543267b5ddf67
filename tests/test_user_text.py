"""One rule for every text a user types (dlm/data/user_text.py): characters the model's tokenizer does not know are
refused with their list, in one `error:` line, at every entry point (infill template, edit text, edit prompts, task
questions); --allow-unk reads them as the unknown token instead."""

from __future__ import annotations

import pytest
import torch

import dlm
from dlm.cli import main
from dlm.data import build_tokenizer
from dlm.data.user_text import encode_user_text
from dlm.registry import ConfigError
from dlm.tasks import get_task
from dlm.tasks.evaluate import encode_prompts

TEXT = "to be or not to be, that is the question:\nwhether tis nobler in the mind to suffer\n"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny masked checkpoint (random weights) with a char tokenizer that has an <unk> token."""
    torch.manual_seed(0)
    tokenizer = build_tokenizer("char", [TEXT])
    cfg = dlm.load_config(None, ["model=tiny", "model.max_len=64", "data.seq_len=64"])
    path = tmp_path_factory.mktemp("ckpt") / "masked"
    dlm.DiffusionLM.from_config(cfg, vocab_size=len(tokenizer), tokenizer=tokenizer).save_pretrained(str(path))
    return str(path)


def test_the_shared_function_lists_the_offending_characters(checkpoint):
    tokenizer = dlm.DiffusionLM.from_pretrained(checkpoint).tokenizer
    with pytest.raises(ConfigError) as info:
        encode_user_text(tokenizer, "to bé or nöt", what="--text")
    message = str(info.value)
    assert message.startswith("--text holds characters") and "'éö'" in message and "--allow-unk" in message
    ids = encode_user_text(tokenizer, "to bé", what="--text", allow_unk=True)
    assert ids.count(tokenizer.unk_token_id) == 1 and len(ids) == 5
    assert encode_user_text(tokenizer, "to be", what="--text") == tokenizer.encode("to be", add_special_tokens=False)


ENTRY_POINTS = {  # argv after `dlm`, the flag the error names
    "infill template": (["infill", "--text", "to bé <mask:3> or", "--steps", "2", "--num-samples", "1"],
                        "the template (--text)"),
    "edit text": (["edit", "--text", "to bé or not", "--prompt", "to be", "--steps", "2"], "the text to edit"),
    "edit prompt": (["edit", "--text", "to be or not", "--prompt", "whé", "--steps", "2"], "--prompt"),
    "edit source prompt": (["edit", "--text", "to be or not", "--prompt", "to", "--source-prompt", "Ünd",
                            "--steps", "2"], "--source-prompt"),
}


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_every_cli_text_entry_point_refuses_unknown_characters_or_allows_them(name, checkpoint, capsys):
    argv, what = ENTRY_POINTS[name]
    argv = [argv[0], "--checkpoint", checkpoint, *argv[1:]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {what} holds characters the model's tokenizer does not know")
    assert "--allow-unk" in err[0]
    assert main([*argv, "--allow-unk"]) == 0
    assert "error" not in capsys.readouterr().err


def test_task_questions_follow_the_same_rule():
    task = get_task("sudoku4x4")
    tokenizer = build_tokenizer("char", ["0123"])  # another task's alphabet: the checkpoint is not this task's
    with pytest.raises(ConfigError) as info:
        encode_prompts(task, tokenizer, [task.generate_examples(1, seed=0)[0].question])
    message = str(info.value)
    assert "a question of task 'sudoku4x4' holds characters the model's tokenizer does not know" in message
    assert "dlm task train" in message and "\n" not in message
