"""`dlm task train <task>` and `dlm task eval <task>`: typed command functions (the CLI derives the flags).

    dlm task train sudoku4x4 --config configs/tasks/sudoku4x4_mdlm.yaml train.steps=2000
    dlm task eval sudoku4x4 --checkpoint runs/tasks/sudoku4x4_mdlm/final --sampler confidence --out res.json

`task train` runs the ordinary training loop (dlm/train/loop.py) on the task's registered data source
(dlm/tasks/source.py) with the data section filled in for the task: one puzzle per row of task.row_len tokens, the
task's fixed char tokenizer, and objective.condition_prefix = task.prompt_len (the prompt is the clean condition and
carries no loss, as in MGDM); config overrides given on the command line come after and win.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from dlm.registry import ConfigError

TOKENIZER_DIR = "task_tokenizer"


def task_train_command(task: str, /, config: str, overrides: list[str] | None = None, train_rows: int = 0,
                       resume: bool = False) -> dict[str, Any]:
    """Train a model on a reasoning task with a YAML config and dotted overrides.

    Args:
        task: sudoku9x9, sudoku4x4, countdown3, countdown4, mult4x4, mult5x5, mult4x4_cot or mult5x5_cot.
        config: the run YAML, e.g. configs/tasks/sudoku4x4_mdlm.yaml.
        overrides: dotted ``section.key=value`` settings applied last, e.g. ``train.steps=2000``.
        train_rows: generated training puzzles (0: the task's default).
        resume: continue <train.out_dir> from its newest checkpoint (a fresh start when it holds none).
    """
    from dlm.config import load_config
    from dlm.tasks import get_task, task_source
    from dlm.train.loop import train

    spec = get_task(task)
    out_dir = Path(load_config(config, overrides).train.out_dir).resolve()
    tokenizer_dir = out_dir / TOKENIZER_DIR
    if not tokenizer_dir.is_dir():
        spec.tokenizer.save_pretrained(str(tokenizer_dir))
    forced = [f"data.source={task_source(task, train_rows)}", "data.val_source=", "data.val_fraction=0.02",
              f"data.tokenizer={tokenizer_dir}", "data.mode=pad", "data.add_bos_eos=false",
              f"data.seq_len={spec.row_len}", f"objective.condition_prefix={spec.prompt_len}"]
    cfg = load_config(config, forced + list(overrides or []))
    summary = train(cfg, resume=resume)
    summary.update(task=task, tokens_seen=summary["steps"] * cfg.train.batch_size * spec.row_len)
    print(json.dumps(summary, indent=2))
    return summary


def task_eval_command(task: str, /, checkpoint: str, sampler: str = "confidence", steps: int = 0, split: str = "test",
                      limit: int = 0, batch_size: int = 100, temperature: float = 0.0, seed: int = 0,
                      out: str = "") -> dict[str, Any]:
    """Solve a task's puzzles with a checkpoint and score them by the rules: accuracy with a 95% Wilson interval
    overall and per difficulty, and samples/s.

    Args:
        task: sudoku9x9, sudoku4x4, countdown3, countdown4, mult4x4, mult5x5, mult4x4_cot or mult5x5_cot.
        checkpoint: the run's final/ directory (e.g. runs/tasks/sudoku4x4_mdlm/final).
        sampler: a registered sampler, options after a colon (confidence:threshold=0.9, entropy_bounded:gamma=0.1,
            remdm:schedule=loop); NFE and tokens/s are reported. Autoregressive checkpoints decode left to right.
        steps: reverse steps (0: one per answer token).
        split: a shipped file (test, valid, train) or 'generated' (1000 fresh puzzles, seed `seed` + 1000).
        limit: puzzles to score (0: all).
        batch_size: puzzles per sampler call.
        temperature: x0 temperature (0 = argmax).
        seed: seed of every random draw.
        out: also write the results JSON here.
    """
    import dlm
    from dlm.tasks import get_task
    from dlm.tasks.evaluate import evaluate

    spec = get_task(task)
    examples = spec.generate_examples(limit or 1000, seed=seed + 1000) if split == "generated" else spec.load(split)
    if limit:
        examples = examples[:limit]
    if not Path(checkpoint).is_dir():
        raise ConfigError(f"checkpoint directory not found: {checkpoint}; pass the run's final/ directory")
    model = dlm.DiffusionLM.from_pretrained(checkpoint)
    result = evaluate(model, spec, examples, sampler=sampler, steps=steps, temperature=temperature,
                      batch_size=batch_size, seed=seed, progress=sys.stderr.isatty())
    result = {"task": task, "split": split, "checkpoint": checkpoint, **result}
    lo, hi = result["wilson95"]
    print(f"{task} {split}: {result['correct']}/{result['n']} = {result['accuracy']:.1%} "
          f"(95% CI {lo:.1%}-{hi:.1%}), {result['samples_per_s']:.1f} samples/s, {result['tokens_per_s']:.1f} "
          f"tokens/s, {result['nfe_per_batch']:.1f} NFE per batch", file=sys.stderr)
    text = json.dumps(result, indent=2)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")
    print(text)
    return result


TASK_COMMANDS = {"train": task_train_command, "eval": task_eval_command}
