"""`dlm train` and `dlm finetune`: the typed functions behind the CLI subcommands (dlm/cli.py parses arguments and
calls them)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from dlm.config import load_config
from dlm.train.loop import train
from dlm.train.resume import resume_config


def train_command(config: str, overrides: list[str] | None = None, resume: bool = False) -> dict[str, Any]:
    """Train the run described by a YAML file, with dotted overrides.

    Args:
        config: the run YAML, e.g. configs/runs/shakespeare_mdlm.yaml.
        overrides: dotted ``section.key=value`` settings applied on top, e.g. ``train.steps=100``.
        resume: continue ``<train.out_dir>`` from its newest loadable checkpoint, with the run's own saved config
            (overrides included) plus the given overrides; only settings listed in dlm/train/resume.py may differ.
            Where it holds no checkpoint yet, start a fresh run (one-line note): one command for a preemptible
            job's first launch and every requeue.

    Returns train()'s summary dict. Raises ConfigError (a one-line message; the CLI prints ``error: <message>``
    and exits 2) for bad input.
    """
    overrides = list(overrides or [])
    cfg = resume_config(config, overrides) if resume else load_config(config, overrides)
    return train(cfg, resume=resume)


def finetune_command(config: str, data: str, overrides: list[str] | None = None, exclude_eos_padding: bool = False,
                     per_row_loss: bool = False, resume: bool = False) -> dict[str, Any]:
    """Supervised fine-tuning on (prompt, response) pairs of different lengths (docs/posttraining.md#sft).

    Each row is the prompt, left-padded to the longest prompt of `data` (P tokens, objective.condition_prefix = P:
    never corrupted, never scored), then the response and EOS up to data.seq_len; the response and the EOS padding
    are noised and scored (LLaDA's SFT). The same command trains the autoregressive baseline (prompt unscored).

    Args:
        config: the run YAML (model, objective, tokenizer, train settings), e.g. configs/runs/shakespeare_mdlm.yaml.
        data: a JSONL file, one {"prompt": ..., "response": ...} object per line.
        overrides: dotted ``section.key=value`` settings applied on top, e.g. ``data.seq_len=128``.
        exclude_eos_padding: leave the EOS tokens after the first one out of the loss.
        per_row_loss: LLaDA's normalisation: each row's loss divided by its own answer length (scored tokens),
            then the mean over rows (objective.loss_per_row=true); default: the mean over all scored tokens.
        resume: continue ``<train.out_dir>`` from its newest checkpoint (as `dlm train --resume`).
    """
    from dlm.data.sft import NO_EOS_PADDING, PREFIX, SFTSource, encode_pairs, read_sft_pairs

    overrides = list(overrides or [])
    given = load_config(config, overrides).data
    tokenizer = SFTSource().tokenizer(replace(given, source=f"{PREFIX}:{data}:0"))
    files = [data, given.val_source] if given.val_source else [data]
    prompt_len = max(len(prompt) for file in files for prompt, _ in encode_pairs(tokenizer, read_sft_pairs(file)))
    source = f"{PREFIX}:{data}:{prompt_len}" + (f":{NO_EOS_PADDING}" if exclude_eos_padding else "")
    forced = [f"data.source={source}", "data.mode=pad", "data.add_bos_eos=false",
              f"objective.condition_prefix={prompt_len}"] + (["objective.loss_per_row=true"] if per_row_loss else [])
    cfg = resume_config(config, forced + overrides) if resume else load_config(config, forced + overrides)
    return train(cfg, resume=resume)
