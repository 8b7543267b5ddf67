"""The README as a newcomer meets it, run top to bottom: every Python snippet and every `dlm ...` command of its
bash blocks is executed, in order, in a scratch directory (configs and the bundled corpus linked in, `../shared`
linked beside it), with tiny overrides that make training and evaluation take seconds (TINY_ARGS). A README that
lies fails here.

Lines whose comment says `slow` (minutes even when tiny, several processes or a GPU) or `online` (needs the network)
are only parsed: the flags against the real CLI, the config file and its overrides, the script or module they run.
Lines whose text or comment names `../shared/data` need the local corpora; without them the rest of their block is
skipped with a reason. The public-contract block is checked name by name, every path, module and docs/ link the
README names must exist, and every docs/ reference in the code must point at a real file and section.
"""

from __future__ import annotations

import codecs
import contextlib
import importlib
import importlib.util
import io
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import torch

from dlm.cli import main as dlm_main
from dlm.cli import parse_arguments
from dlm.config import load_config
from dlm.data.paths import data_dir

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
LINKED = ("configs", "dlm", "docs", "examples", "scripts", "benchmarks", "pyproject.toml")  # into the scratch dir

TINY_MODEL = ["model.n_layers=1", "model.d_model=32", "model.n_heads=2", "model.cond_dim=16"]
TINY_TRAIN = ["train.steps=3", "train.batch_size=4", "train.eval_every=0", "train.save_every=0",
              "train.eval_batches=1", "train.progress=false"]
TINY_ARGS = {  # appended to a command (later flags and dotted overrides win)
    ("train",): TINY_MODEL + TINY_TRAIN,
    ("train", "--resume"): ["train.steps=6"],  # a resumed run may change train.steps only
    ("task", "train"): TINY_MODEL + TINY_TRAIN + ["--train-rows", "64"],
    ("finetune",): TINY_MODEL + TINY_TRAIN,
    ("task", "eval"): ["--limit", "4"],
    ("sample",): ["--num-samples", "2", "--steps", "8"],
    ("infill",): ["--num-samples", "1", "--steps", "8"],
    ("edit",): ["--steps", "4"],
    ("eval", "ppl"): ["--max-blocks", "4"],
    ("eval", "genppl"): ["--num-samples", "2", "--steps", "8"],
    ("vq", "train"): ["--steps", "3", "--batch-size", "8"],
    ("distill",): ["--teacher-steps", "4", "--rounds", "1", "--steps-per-round", "2", "--batch-size", "2"],
}
TINY_PYTHON = {"n_t=128)": "n_t=4)", "steps=128,": "steps=8,",  # Using it from Python: fewer t samples and steps
               "range(1000)": "range(2)"}  # the class-conditional checkpoint of the DICE section: 2 steps


# -- reading the README -----------------------------------------------------------------------------------------

def _blocks() -> list[tuple[str, str, str]]:
    """(section heading, language, body) of every fenced block, in order."""
    out, heading = [], ""
    for part in re.split(r"(^## [^\n]*$|```\w*\n.*?```)", README, flags=re.M | re.S):
        if part.startswith("## "):
            heading = part[3:].strip()
        elif part.startswith("```"):
            lang, body = re.match(r"```(\w*)\n(.*)```", part, re.S).groups()
            out.append((heading, lang, body))
    return out


def _line(line: str) -> tuple[list[str], str]:
    """A bash line -> (argv, comment). $'...' is decoded as bash does; the comment is what follows an unquoted #."""
    line = re.sub(r"\$'((?:[^'\\]|\\.)*)'", lambda m: shlex.quote(codecs.decode(m.group(1), "unicode_escape")),
                  line)
    words = shlex.split(line)
    cut = next((i for i, w in enumerate(words) if w.startswith("#")), len(words))
    return words[:cut], " ".join(words[cut:])


def _bash_lines(body: str) -> list[tuple[list[str], str, str]]:
    joined = re.sub(r"\\\n\s*", " ", body)  # continuation lines
    texts = (t.strip() for t in joined.splitlines())
    return [(*_line(text), text) for text in texts if text and not text.startswith("#")]  # not comment lines


def _cli_argv(argv: list[str]) -> list[str] | None:
    if argv[:1] == ["dlm"]:
        return argv[1:]
    if "dlm.cli" in argv:
        return argv[argv.index("dlm.cli") + 1:]
    return None


BLOCKS = _blocks()
BASH = [line for _, lang, body in BLOCKS if lang == "bash" for line in _bash_lines(body)]
COMMANDS = [cli for argv, _, _ in BASH if (cli := _cli_argv(argv)) is not None]
CONTRACT = next(body for heading, lang, body in BLOCKS if heading == "The public contract")
RUNNABLE = [(heading, lang, body) for heading, lang, body in BLOCKS if body is not CONTRACT]


def _parse_only(comment: str) -> bool:
    return bool(re.search(r"\b(slow|online)\b", comment))


# -- parsed: every command, the contract, the names ---------------------------------------------------------------

def test_the_readme_shows_commands_of_every_kind():
    assert {argv[0] for argv in COMMANDS} >= {"train", "sample", "infill", "eval", "lm-eval", "edit", "task", "vq"}


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(a)[:60] for a in COMMANDS])
def test_every_readme_command_parses(argv):
    args = parse_arguments(argv)
    if argv[0] == "train" or argv[:2] == ["task", "train"]:
        assert (REPO / args["config"]).is_file(), args["config"]
        load_config(REPO / args["config"], args["overrides"])  # the overrides name real keys with valid values


def test_every_script_module_and_link_the_readme_names_exists():
    scripts = set(re.findall(r"((?:scripts|examples)/[\w./-]+\.(?:sh|py))", README)) | {".ci/run"}
    assert not [s for s in sorted(scripts) if not (REPO / s).is_file()]
    modules = set(re.findall(r"python -m ((?:scripts|examples)(?:\.\w+)+)", README))
    assert modules and not [m for m in sorted(modules) if importlib.util.find_spec(m) is None]
    assert not _broken_links(README, REPO)


def test_the_public_contract_names_exist():
    module, names = None, []
    for line in CONTRACT.splitlines():
        if m := re.match(r"# (dlm(?:\.\w+)*)(?::.*)?$", line.strip()):
            path = m.group(1)  # a module, or a class of one (`# dlm.DiffusionLM`)
            module = importlib.import_module(path if importlib.util.find_spec(path) else path.rsplit(".", 1)[0])
        elif m := re.match(r"(?:def|class) (\w+)", line):
            names.append(m.group(1))
            assert hasattr(module, m.group(1)), f"{module.__name__}.{m.group(1)}"
    assert {"generate", "elbo", "invert", "edit", "DiffusionLM", "Process", "Schedule"} <= set(names)


def test_docs_links_and_the_docs_references_of_the_code_resolve():
    for page in sorted((REPO / "docs").glob("*.md")):
        assert not _broken_links(page.read_text(), page.parent), page.name
    cited = set()
    for folder in ("dlm", "scripts", "tests", "configs", "examples"):
        for path in (REPO / folder).rglob("*"):
            if path.suffix in (".py", ".yaml", ".sh"):
                cited |= set(re.findall(r"docs/(\w+\.md)(#[\w-]+)?", path.read_text()))
    assert cited
    assert not [f"{name}{anchor}" for name, anchor in sorted(cited) if not _resolves(REPO / "docs", name, anchor)]


def _broken_links(text: str, base: Path) -> list[str]:
    links = re.findall(r"\]\(([\w./-]+\.md)(#[^)]*)?\)", text)
    return [f"{target}{anchor}" for target, anchor in links if not _resolves(base, target, anchor)]


def _resolves(base: Path, target: str, anchor: str) -> bool:
    page = (base / target).resolve()
    if not page.is_file():
        return False
    return not anchor or anchor[1:] in {_slug(h) for h in re.findall(r"^#+ (.*)$", page.read_text(), re.M)}


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


# -- executed: the README top to bottom ---------------------------------------------------------------------------

STATUS_BEFORE: list[str] = []  # `git status` when the scratch directory was made


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """An empty working directory with the repository's tracked folders linked in and ../shared beside it."""
    root = tmp_path_factory.mktemp("readme")
    work = root / "work"
    work.mkdir()
    STATUS_BEFORE.append(_repository_status())
    for name in LINKED:
        (work / name).symlink_to(REPO / name)
    if data_dir().is_dir():
        (root / "shared").mkdir()
        (root / "shared" / "data").symlink_to(data_dir())
    return work


@pytest.mark.parametrize("index", range(len(RUNNABLE)),
                         ids=[f"{i}:{h[:24]}:{lang}" for i, (h, lang, _) in enumerate(RUNNABLE)])
def test_the_readme_runs_top_to_bottom(index, scratch, monkeypatch):
    heading, lang, body = RUNNABLE[index]
    monkeypatch.chdir(scratch)
    with _global_state_kept():
        if lang == "python":
            for old, new in TINY_PYTHON.items():
                body = body.replace(old, new)
            exec(compile(body, f"README.md ({heading})", "exec"), {})
            return
        for argv, comment, text in _bash_lines(body):
            if "../shared/data" in text and not data_dir().is_dir():
                pytest.skip(f"needs the local corpora ({data_dir()} is absent): {text}")
            cli = _cli_argv(argv)
            if _parse_only(comment) or cli is None or argv[0] != "dlm":
                continue  # parsed above: slow / online lines, scripts, torchrun
            code, output = _run(cli + _tiny_args(cli))
            assert code == 0, f"{text}\n{output[-3000:]}"


def _tiny_args(cli: list[str]) -> list[str]:
    if cli[0] == "train":
        return TINY_ARGS[("train", "--resume")] if "--resume" in cli else TINY_ARGS[("train",)]
    return TINY_ARGS.get(tuple(cli[:2]), TINY_ARGS.get(tuple(cli[:1]), []))


def _run(cli: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            code = dlm_main(cli)
        except SystemExit as stop:
            code = stop.code
    return code or 0, out.getvalue()


@contextlib.contextmanager
def _global_state_kept():
    """The CLI's entry point may set threads and environment variables: keep them out of the other tests."""
    threads, environ = torch.get_num_threads(), dict(os.environ)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        os.environ.clear()
        os.environ.update(environ)


def test_running_the_readme_leaves_the_repository_as_it_was(scratch):
    """Runs after the README ran (file order): nothing it did wrote into the repository, links included."""
    assert STATUS_BEFORE and _repository_status() == STATUS_BEFORE[0]


def _repository_status() -> str:
    done = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO, capture_output=True,
                          text=True)
    return done.stdout if done.returncode == 0 else ""
