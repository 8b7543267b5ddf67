"""`dlm data ...`: typed functions behind the CLI subcommands (dlm/cli.py parses arguments and calls them)."""

from __future__ import annotations

from typing import Any

from dlm.data.prepare import prepare


def prepare_command(source: str, out: str, tokenizer: str = "gpt2", num_proc: int = 1, text_field: str = "text",
                    doc_split: str = "blank_line", encoder: str = "auto") -> dict[str, Any]:
    """Tokenize a corpus into memory-mapped token shards for ``data.source: prepared:OUT``.

    Prints one line per split and returns the manifest; bad input raises a one-line ConfigError.

    Args:
        source: hf:NAME[:CONFIG] or local .txt/.jsonl/.csv files (comma-separated, globs allowed; each optionally
            .gz).
        out: the output folder (train with data.source=prepared:OUT).
        tokenizer: a tokenizer name or dir (gpt2, bert-base-uncased, char:..., a local HF tokenizer dir).
        num_proc: worker processes that tokenize slices in parallel.
        text_field: the .jsonl field / .csv column / HF column holding the text.
        doc_split: how a .txt file splits into documents: blank_line, line or file.
        encoder: auto (tiktoken for gpt2 where installed: the same ids, faster), hf or tiktoken.
    """
    manifest = prepare(source, tokenizer, out, num_proc=num_proc, text_field=text_field, doc_split=doc_split,
                       encoder=encoder)
    for split, entry in manifest["splits"].items():
        print(f"{split}: {entry['documents']:,} documents, {entry['tokens']:,} tokens in {len(entry['shards'])} "
              f"{manifest['dtype']} shard(s)")
    print(f"prepared {out}: train with data.source=prepared:{out} data.tokenizer={tokenizer}")
    return manifest


DATA_COMMANDS = {"prepare": prepare_command}
