"""`dlm edit` on a tiny saved class-conditional checkpoint (random weights): markers and spans, exact replay,
untouched context, and one-line errors."""

import pytest
import torch

import dlm
from dlm.cli import main
from dlm.data import build_tokenizer
from dlm.edit.commands import edit_command, parse_edit_text

TEXT = "KING RICHARD:\nNow is the winter of our discontent"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    tokenizer = build_tokenizer("char", [TEXT + "QUEENabcdefghijklmnopqrstuvwxyz"])
    cfg = dlm.load_config(None, ["model=tiny", "model.num_classes=2", "model.max_len=64"])
    model = dlm.DiffusionLM.from_config(cfg, vocab_size=len(tokenizer), tokenizer=tokenizer)
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    model.save_pretrained(str(path))
    return str(path)


def test_markers_limit_the_edit_and_reconstruction_is_exact(checkpoint, capsys):
    marked = "KING <edit>RICHARD</edit>:\nNow is the winter of our discontent"
    result = edit_command(checkpoint, text=marked, label=1, source_label=0, tau=0.9, lambda1=0.0, steps=6,
                          reconstruct=True, seed=1)
    out = capsys.readouterr().out
    assert result["reconstruction_exact"] is True
    assert "reconstruction (source condition, lambda1=1, lambda2=0): exact" in out
    assert result["source"] == TEXT
    edited = result["edited"]
    assert edited[:5] == "KING " and edited[12:] == TEXT[12:]  # only RICHARD may change
    assert edited[5:12] != "RICHARD"  # lambda1 = 0: a fresh draw from a random model
    assert f"kept:   {result['kept']:.1%}" in out and result["kept"] < 1


def test_span_and_prompt_condition(checkpoint, capsys):
    ids, editable = parse_edit_text(TEXT, dlm.DiffusionLM.from_pretrained(checkpoint).tokenizer, "14:20")
    assert ids.shape == (1, len(TEXT)) and editable[0].nonzero().flatten().tolist() == list(range(14, 20))
    result = edit_command(checkpoint, text=TEXT, span="14:20", prompt="QUEEN", cfg_scale=1.0, lambda1=0.5, steps=4,
                          seed=0, reconstruct=True)
    assert result["edited"][:14] == TEXT[:14] and result["edited"][20:] == TEXT[20:]
    assert result["reconstruction_exact"] is True


@pytest.mark.parametrize("argv, message", [
    (["--text", "abc"], "needs a target condition"),
    (["--text", "a<edit>b</edit>c", "--span", "0:1", "--label", "1"], "give the editable region once"),
    (["--text", "abc", "--span", "2:9", "--label", "1"], "is outside the text"),
    (["--text", "abc", "--label", "5"], "below num_classes=2"),
    (["--label", "1"], "exactly one of --text or --file"),
])
def test_bad_input_is_one_line(checkpoint, capsys, argv, message):
    assert main(["edit", "--checkpoint", checkpoint, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_prompt_prefix_denoiser_reads_the_prefix(checkpoint):
    """Prefixed(model, p) is model(cat(p, x))[:, P:]; at cfg scale w it is the guided combination of that and the
    same input with the prefix masked."""
    from dlm.edit.commands import Prefixed
    from dlm.guidance import guide

    model = dlm.DiffusionLM.from_pretrained(checkpoint).eval()
    x = torch.tensor([model.tokenizer.encode("winter", add_special_tokens=False)])
    prefix = torch.tensor([model.tokenizer.encode("QUEEN", add_special_tokens=False)])
    t = torch.full((1,), 0.5)
    cut, hidden = prefix.shape[1], torch.full_like(prefix, model.process.mask_id)
    with torch.no_grad():
        full = model(torch.cat([prefix, x], 1), t).log_probs[:, cut:]
        masked = model(torch.cat([hidden, x], 1), t).log_probs[:, cut:]
        assert torch.equal(Prefixed(model, prefix, 0.0)(x, t).log_probs, full)
        guided = guide(dlm.types.Prediction(log_probs=full), dlm.types.Prediction(log_probs=masked), 2.0)
        assert torch.allclose(Prefixed(model, prefix, 2.0)(x, t).log_probs, guided.log_probs)


def test_cli_reads_a_file(checkpoint, tmp_path, capsys):
    path = tmp_path / "speech.txt"
    path.write_text("KING <edit>RICHARD</edit>:\nNow is the winter\n")
    assert main(["edit", "--checkpoint", checkpoint, "--file", str(path), "--label", "1", "--steps", "4",
                 "--reconstruct"]) == 0
    out = capsys.readouterr().out
    assert "source: KING RICHARD:\nNow is the winter\n" in out and ": exact" in out
