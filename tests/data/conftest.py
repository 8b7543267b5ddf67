"""Fixtures for the data tests: HF offline mode (`shared_file`, the local data dir, lives in tests/conftest.py)."""

from __future__ import annotations

import pytest

from dlm.data.paths import data_dir


@pytest.fixture
def offline(monkeypatch):
    """Make every HF hub call fail at once instead of retrying over the network."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    try:
        import datasets.config
    except ImportError:
        return
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


@pytest.fixture
def shared_gpt2():
    """Skip unless the GPT-2 tokenizer files are in the data dir (build_tokenizer('gpt2') then needs no network)."""
    folder = data_dir() / "tokenizers" / "gpt2"
    if not ((folder / "encoder.json").is_file() and (folder / "vocab.bpe").is_file()):
        pytest.skip(f"the GPT-2 tokenizer files are not in {folder}")
    return folder
