"""Step-by-step rendering of a trajectory: terminal lines and an HTML page, driven by on_step."""

import torch

from dlm.process import Absorbing
from dlm.sample import generate
from dlm.sample.show_steps import BOLD, StepRecorder, render_text, token_decoder, write_html
from tests.sample.helpers import TOY

WORDS = {0: "to ", 1: "be ", 2: "or "}


def recorded():
    recorder = StepRecorder()
    x = generate(TOY.denoiser(Absorbing(3)), Absorbing(3), "ancestral", steps=8, shape=(2, 3),
                 generator=torch.Generator().manual_seed(0), on_step=recorder)
    return recorder, x


def test_recorder_keeps_every_state():
    recorder, x = recorded()
    assert recorder.indices == list(range(10)) and recorder.times[0] == 1.0 and recorder.times[-1] == 0.0
    assert bool((recorder.states[0] == 3).all()) and torch.equal(recorder.states[-1], x)


def test_render_text_shows_masks_filling_in():
    recorder, x = recorded()
    lines = render_text(recorder, WORDS.__getitem__, mask_id=3, row=1)
    assert lines[0].endswith("___")
    assert lines[-1].endswith("".join(WORDS[v] for v in x[1].tolist()))
    masks = [line.split("  ")[-1].count("_") for line in lines]
    assert masks == sorted(masks, reverse=True) and len(set(masks)) == len(masks)  # only changing states
    colored = render_text(recorder, WORDS.__getitem__, mask_id=3, row=1, color=True)
    assert all(BOLD in line for line in colored[1:]) and BOLD not in colored[0]


def test_write_html(tmp_path):
    recorder, _ = recorded()
    path = write_html(tmp_path / "steps" / "x.html", recorder, lambda v: f"<{v}&>", mask_id=3)
    page = path.read_text()
    assert page.startswith("<!doctype html>") and page.count('class="mask"') > 0
    assert "&lt;" in page and "&amp;&gt;" in page and "<1&>" not in page and "<2&>" not in page
    assert page.count("<div>") == len(render_text(recorder, WORDS.__getitem__, mask_id=3))
    assert token_decoder(None)(7) == "7 "
