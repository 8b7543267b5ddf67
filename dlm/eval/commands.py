"""`dlm eval ppl|genppl` and `dlm lm-eval`: typed command functions (flags come from the signatures).

Each writes a self-describing JSON results file (report.provenance: checkpoint + weights hash, git commit, dlm
version, every argument and seed) and prints a table. Heavy imports happen inside the functions.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from dlm.image.commands import images_command
from dlm.registry import ConfigError


def _default_out(kind: str) -> str:
    return str(Path("eval_results") / f"{kind}_{datetime.now().strftime('%Y%m%d-%H%M%S')}.json")


def _split_list(value: str, what: str) -> list[str]:
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise ConfigError(f"--{what} is empty; give a comma-separated list")
    return items


def ppl_command(checkpoint: str, datasets: str = "ptb,wikitext2", data_dir: str = "", n_t: int = 1,
                estimator: str = "mdlm", batch_size: int = 16, seq_len: int = 0, max_blocks: int = 0, seed: int = 0,
                out: str = "", mode: str = "", device: str = "", text_field: str = "", doc_split: str = "",
                no_header: bool = False, exclude_oov: bool = False, oov_warn: float = 1e-3,
                threads: int = 0) -> dict:
    """Zero-shot perplexity bound (exact for AR) with Monte Carlo standard errors, per checkpoint and dataset.

    Args:
        checkpoint: one or more dlm checkpoint dirs, comma-separated (an AR one among them adds the diffusion/AR
            ratio, over the same scored tokens).
        datasets: ptb, wikitext2, wikitext103, wikitext2-raw, wikitext103-raw, lm1b, lambada, ag_news, pubmed,
            arxiv (name@split for another split, name[@split]=PATH to read a named corpus from a local file),
            local .txt/.jsonl/.csv files or hf:NAME[:CONFIG].
        data_dir: read the named corpora only from local copies under this folder (layout of ../shared/data).
            Without it: the copy under $DLM_DATA_DIR (else ../shared/data beside the checkout) when present, else
            Hugging Face; offline (HF_HUB_OFFLINE=1 or no network) that fails at once naming the paths looked in.
        n_t: time samples per sequence (passes of the estimator).
        estimator: mdlm (one t per sequence, n_t passes) or many (n_t stratified t per sequence).
        batch_size: sequences per model call.
        seq_len: tokens per scored block (default: the model's training data config).
        max_blocks: blocks per dataset (0 = all).
        seed: seed of every random draw.
        out: results JSON (default eval_results/ppl_<time>.json).
        mode: how documents become blocks (default: the model's training data config).
        device: cpu, cuda, cuda:N (default: cuda when available).
        text_field: .jsonl field / .csv column(s) of local files ("title,description" joins columns; 0, 1, ...
            for a CSV without header).
        doc_split: line | blank_line | file for .txt files (default: the checkpoint's data config).
        no_header: the CSV's first row is data.
        exclude_oov: leave <unk> tokens out of the score (context).
        oov_warn: warn when the OOV rate exceeds it.
        threads: CPU intra-op threads (0 = automatic).
    """
    arguments = dict(locals())
    from dlm.eval.corpora import TextFormat
    from dlm.eval.device import cpu_threads, resolve_device
    from dlm.eval.report import format_table, provenance, write_json
    from dlm.eval.zero_shot import evaluate_checkpoints

    with cpu_threads(resolve_device(device), threads) as policy:
        table = evaluate_checkpoints(_split_list(checkpoint, "checkpoint"), _split_list(datasets, "datasets"),
                                     data_dir=data_dir, estimator=estimator, n_t=n_t, batch_size=batch_size,
                                     seq_len=seq_len, mode=mode, max_blocks=max_blocks, seed=seed, device=device,
                                     exclude_oov=exclude_oov, oov_warn=oov_warn,
                                     text_format=TextFormat(text_field, doc_split, not no_header))
        payload = {"provenance": provenance("dlm eval ppl", arguments), **table}
    payload["runtime"] = {**table["runtime"], **policy}
    path = out or _default_out("ppl")
    write_json(path, payload)
    print(format_table(table["rows"], table["ratios"]))
    print(f"results: {path}")
    return payload


def genppl_command(checkpoint: str, reference: str, num_samples: int = 16, length: int = 0, steps: int = 128,
                   sampler: str = "ancestral", seed: int = 0, out: str = "", batch_size: int = 16,
                   device: str = "", threads: int = 0) -> dict:
    """Generative perplexity of unconditional samples under a reference causal LM, with their unigram entropy.

    Reports MDLM's token-weighted gen_ppl and SEDD's per-sample mean beside it.

    Args:
        checkpoint: the dlm checkpoint dir to sample from.
        reference: a dlm autoregressive checkpoint dir or a Hugging Face causal LM name/dir.
        num_samples: how many samples.
        length: tokens per sample (0: the model's training seq_len).
        steps: reverse steps of the sampler.
        sampler: a registered sampler (an autoregressive checkpoint decodes left to right).
        seed: seed of every random draw.
        out: results JSON (default eval_results/genppl_<time>.json).
        batch_size: samples per model call.
        device: cpu, cuda, cuda:N (default: cuda when available).
        threads: CPU intra-op threads (0 = automatic).
    """
    arguments = dict(locals())
    from dlm.diffusion_lm import DiffusionLM
    from dlm.eval.device import cpu_threads, resolve_device
    from dlm.eval.generative import ReferenceLM, generative_perplexity, sample_texts, unigram_entropy
    from dlm.eval.report import checkpoint_info, provenance, write_json

    device = resolve_device(device)
    with cpu_threads(device, threads) as policy:
        model = DiffusionLM.from_pretrained(checkpoint, map_location=device).eval()
        model.check_config()
        length = length or model.config.data.seq_len
        samples = sample_texts(model, num_samples=num_samples, length=length, steps=steps, sampler=sampler,
                               seed=seed, batch_size=batch_size)
        result = {**checkpoint_info(checkpoint, model),
                  **generative_perplexity(samples.texts, ReferenceLM.load(reference, device), batch_size=batch_size),
                  "entropy": unigram_entropy(samples.ids), "length": length, "steps": steps,
                  "sampler": samples.sampler, "seed": seed}
        payload = {"provenance": provenance("dlm eval genppl", arguments), "runtime": {"device": str(device),
                   **policy}, "result": result, "samples": samples.texts}
    path = out or _default_out("genppl")
    write_json(path, payload)
    print(f"gen_ppl {result['gen_ppl']:.3f} (per-sample mean {result['gen_ppl_sample_mean']:.3f}) under "
          f"{reference}, entropy {result['entropy']:.3f} nats, {result['num_tokens']} tokens, "
          f"{num_samples} samples x {length}, {samples.sampler} {steps} steps\nresults: {path}")
    return payload


def lm_eval_command(model_args: str, tasks: str, include_path: str = "", limit: int = 0, output_path: str = "",
                    log_samples: bool = False) -> dict:
    """Run lm-evaluation-harness tasks on a dlm checkpoint.

    Args:
        model_args: pretrained=DIR plus options of the dlm model, comma-separated (e.g.
            pretrained=runs/x/final,mc_num=128).
        tasks: lm-eval task names, comma-separated (e.g. lambada_openai,piqa).
        include_path: a folder of extra task YAMLs (lm-eval's own tasks are indexed only when a task is not found
            there).
        limit: examples per task (0 = all).
        output_path: results JSON (default eval_results/lm_eval_<time>.json).
        log_samples: also keep every request, response and document in it.
    """
    arguments = dict(locals())
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
        from lm_eval.utils import make_table

        import dlm.eval.harness  # noqa: F401  (registers model "dlm")
    except ImportError:
        raise ConfigError("dlm lm-eval needs lm-eval: pip install 'dlm[eval]' (or pip install lm-eval)") from None
    from dlm.eval.device import cpu_threads, model_arg, resolve_device
    from dlm.eval.report import provenance, write_json

    names = _split_list(tasks, "tasks")
    manager = TaskManager(include_path=include_path, include_defaults=False) if include_path else None
    if manager is None or not set(names) <= set(manager.all_tasks):  # indexing lm-eval's own tasks takes ~20 s
        manager = TaskManager(include_path=include_path or None)
    unknown = [name for name in names if name not in manager.all_tasks and not manager.match_tasks([name])
               and not Path(name).is_file()]
    if unknown:
        raise ConfigError(f"unknown lm-eval task(s): {', '.join(unknown)}; `lm-eval ls tasks` lists them "
                          "(--include-path adds a folder of task YAMLs)")
    with cpu_threads(resolve_device(model_arg(model_args, "device")), model_arg(model_args, "threads") or 0):
        results = lm_eval.simple_evaluate(model="dlm", model_args=model_args, tasks=names,
                                          limit=limit or None, task_manager=manager, log_samples=log_samples)
    payload = {"provenance": provenance("dlm lm-eval", arguments), "model": results.get("config", {}),
               "results": results["results"], "configs": results.get("configs", {}),
               "versions": results.get("versions", {}), "n-shot": results.get("n-shot", {})}
    if log_samples:
        payload["samples"] = results.get("samples", {})
    path = output_path or _default_out("lm_eval")
    write_json(path, payload)
    print(make_table(results))
    model = payload["model"]
    print(f"OOV {100 * model.get('oov_rate', 0.0):.2f}% of {model.get('continuation_tokens', 0)} scored tokens"
          + (" (excluded)" if model.get("exclude_oov") else "") + f"; cpu threads {model.get('cpu_threads')}")
    print(f"results: {path}")
    return payload


EVAL_COMMANDS = {"ppl": ppl_command, "genppl": genppl_command, "images": images_command}
LM_EVAL_COMMAND = lm_eval_command
