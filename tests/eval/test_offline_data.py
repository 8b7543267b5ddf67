"""`dlm eval ppl` without --data-dir reads the named corpora from $DLM_DATA_DIR (else ../shared/data), and offline
fails at once, naming the local paths it looked in, without ever calling the hub (whose client retries ~25 s)."""

from __future__ import annotations

import datasets
import pytest

from dlm.cli import main
from dlm.eval import corpora
from dlm.eval.commands import ppl_command
from dlm.registry import ConfigError

OFFLINE_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


@pytest.fixture
def no_hub(monkeypatch):
    """Any call into the hub fails the test."""
    def forbidden(*args, **kwargs):
        raise AssertionError("the hub was called")

    monkeypatch.setattr(datasets, "load_dataset", forbidden)


def test_the_default_data_dir_is_read_without_data_dir(checkpoints, tmp_path, monkeypatch, no_hub, capsys):
    (tmp_path / "ptb").mkdir()
    (tmp_path / "ptb" / "ptb.valid.txt").write_text("".join(f" the cat sat on mat number {i} \n" for i in range(50)))
    monkeypatch.setenv("DLM_DATA_DIR", str(tmp_path))
    payload = ppl_command(str(checkpoints["ar"]), datasets="ptb", device="cpu", max_blocks=2,
                          out=str(tmp_path / "o.json"))
    (row,) = payload["rows"]
    assert row["source"] == str(tmp_path / "ptb" / "ptb.valid.txt") and row["num_blocks"] == 2


def test_hf_hub_offline_fails_at_once_naming_the_local_path(checkpoints, tmp_path, monkeypatch, no_hub, capsys):
    monkeypatch.setenv("DLM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["eval", "ppl", "--checkpoint", str(checkpoints["ar"]), "--datasets", "ptb", "--device", "cpu",
                 "--out", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no local copy of ptb validation")
    assert f"looked in {tmp_path / 'ptb' / 'ptb.valid.txt'}" in err[0] and "offline" in err[0]


def test_an_unreachable_hub_fails_at_once_too(tmp_path, monkeypatch, no_hub):
    for name in OFFLINE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DLM_DATA_DIR", str(tmp_path))
    probes = []

    def unreachable(address, timeout):
        probes.append((address, timeout))
        raise OSError("network is unreachable")

    monkeypatch.setattr(corpora.socket, "create_connection", unreachable)
    with pytest.raises(ConfigError, match=r"no local copy of wikitext2 validation \(looked in .*wikitext-2"):
        corpora.load_eval_texts("wikitext2")
    assert probes == [((corpora.HUB_HOST, 443), corpora.HUB_PROBE_SECONDS)]  # one short probe, no retries
    with pytest.raises(ConfigError, match="local copies hold no test split"):  # no local file for lm1b test
        corpora.load_eval_texts("lm1b")


def test_a_hanging_name_lookup_is_bounded_by_the_probe_time(tmp_path, monkeypatch, no_hub):
    """create_connection's timeout does not cover DNS: a resolver that never answers must still give "offline"
    after the probe time, not hang the command."""
    import threading
    import time

    for name in OFFLINE_ENV:
        monkeypatch.delenv(name, raising=False)
    release = threading.Event()

    def hanging_lookup(address, timeout):
        release.wait(60)  # a dead resolver: far longer than the probe may take
        raise OSError("name resolution timed out")

    monkeypatch.setattr(corpora.socket, "create_connection", hanging_lookup)
    monkeypatch.setattr(corpora, "HUB_PROBE_SECONDS", 0.2)
    start = time.monotonic()
    try:
        assert corpora.hub_offline()
        assert time.monotonic() - start < 10
    finally:
        release.set()


def test_an_explicit_data_dir_is_the_only_place_looked(tmp_path, no_hub):
    with pytest.raises(ConfigError, match=f"{tmp_path / 'ptb' / 'ptb.valid.txt'} not found"):
        corpora.load_eval_texts("ptb", data_dir=str(tmp_path))


def test_the_default_is_shared_data_beside_the_checkout_else_beside_the_working_directory(tmp_path, monkeypatch):
    from dlm.data import paths

    monkeypatch.delenv("DLM_DATA_DIR", raising=False)
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "checkout").mkdir()
    monkeypatch.chdir(tmp_path / "checkout")
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path / "site-packages" / "x")  # an installed dlm: no shared/ there
    assert paths.data_dir() == tmp_path / "shared" / "data"
    (tmp_path / "a" / "shared" / "data").mkdir(parents=True)
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path / "a" / "checkout")  # a checkout beside shared/ wins
    assert paths.data_dir() == tmp_path / "a" / "shared" / "data"
    monkeypatch.setenv("DLM_DATA_DIR", str(tmp_path / "mine"))
    assert paths.data_dir() == tmp_path / "mine"
