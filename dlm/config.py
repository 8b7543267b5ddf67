"""Run configuration: YAML -> frozen dataclasses, dotted CLI overrides, with one-line errors.

A run YAML has the sections model / process / objective / data / train. A section may be a plain string, which
names a preset file ``configs/<section>/<name>.yaml`` (e.g. ``model: tiny``). Overrides are ``key.sub=value``
strings parsed as YAML scalars, e.g. ``train.lr=3e-4 model.n_layers=2``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from dlm.registry import OBJECTIVES, ConfigError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


@dataclass(frozen=True)
class ModelConfig:
    """The shared backbone (dlm/model/transformer.py). Vocabulary widths come from the process, not from here."""

    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    mlp_ratio: float = 4.0
    max_len: int = 256
    cond_dim: int = 128  # width of the adaLN conditioning vector
    dropout: float = 0.0
    rope_base: float = 10000.0
    # sdpa | flash (falls back to sdpa where flash-attn is unavailable) | flex (FlexAttention for explicit masks)
    attention: str = "sdpa"
    num_classes: int = 0  # > 0: a class-label embedding (label num_classes = no label) for classifier-free guidance
    learned_positions: bool = False  # add a learned absolute position embedding (max_len rows) to the rotary ones


@dataclass(frozen=True)
class ScheduleConfig:
    name: str = "loglinear"  # loglinear | cosine | linear | geometric
    eps: float = 1e-3  # loglinear / cosine
    sigma_min: float = 1e-4  # linear / geometric
    sigma_max: float = 20.0


@dataclass(frozen=True)
class ProcessConfig:
    name: str = ""  # a registered process (absorbing, uniform, ...) or none (autoregressive); empty: the objective's
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)


@dataclass(frozen=True)
class CurriculumConfig:
    """Duo's Gaussian-relaxed curriculum for uniform_elbo (docs/uniform.md#curriculum): the first `end` training
    steps feed the backbone softmax(w_t / tau) instead of the token z_t = argmax(w_t); log10 tau moves linearly from
    tau_log10_start to tau_log10_end over the steps [start, end]. end = 0: off."""

    start: int = 0
    end: int = 0
    tau_log10_start: float = -1.0
    tau_log10_end: float = -2.0


@dataclass(frozen=True)
class ObjectiveConfig:
    # masked_elbo | radd | uniform_elbo | mean_elbo | score_entropy | autoregressive | block_diffusion
    name: str = "masked_elbo"
    time_conditioning: bool | None = None  # None: the objective's default (objectives/: default_time_conditioning)
    time_sampler: str = ""  # stratified | uniform | vdm; empty: the objective's default
    sampling_eps: float = 1e-3  # training t ~ U[sampling_eps, 1]
    discrete_steps: int = 0  # T > 0: discrete-time ELBO on the grid {1/T, ..., 1} (masked_elbo only)
    condition_prefix: int = 0  # N > 0: positions [0, N) (a task's prompt) are never corrupted and never scored
    loss_per_row: bool = False  # LLaDA's SFT: each row's loss / its own scored tokens, then the mean over rows
    token_reweight_gamma: float = 0.0  # > 0: MGDM token reweighting alpha (1 - p)^gamma (masked_elbo only)
    token_reweight_alpha: float = 0.25
    block_size: int = 0  # block_diffusion: tokens per block (the paper's L'); 0: the family default (4)
    clip: tuple[float, float] = (0.0, 1.0)  # block_diffusion: training times from U[beta, omega] (clipped schedule)
    clip_search: bool = False  # block_diffusion: pick clip at every validation, least per-block variance
    logit_shift: bool = False  # block_diffusion: token j read from the output at j - 1 (an AR-converted model)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)  # uniform_elbo: Duo's relaxed warm-up


@dataclass(frozen=True)
class DataConfig:
    source: str = "tinyshakespeare"  # registered name, local .txt/.txt.gz/.jsonl/.csv file, or hf:NAME[:CONFIG]
    val_source: str = ""  # empty: hold out the last val_fraction of `source`
    val_fraction: float = 0.05
    tokenizer: str = "char"  # char | byte | gpt2 | bert-base-uncased | bpe:<vocab size> | a HF name or local dir
    seq_len: int = 256
    mode: str = "wrap"  # wrap (concatenate + cut, MDLM wrap) | pad (one document per row)
    add_bos_eos: bool = True  # per block in wrap mode (MDLM: L-2 tokens + BOS + EOS); per document in pad mode
    text_field: str = "text"  # .jsonl field / .csv column / HF dataset column
    doc_split: str = "blank_line"  # .txt documents: line | blank_line | file
    cache_dir: str = ""  # where tokenized arrays are cached; empty: no cache


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    batch_size: int = 32  # global batch per optimizer step (split over ranks and accumulation)
    grad_accum: int = 1
    lr: float = 3e-4
    lr_schedule: str = "cosine"  # cosine | constant
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    ema: float = 0.0  # 0 disables EMA; 0.9999 as MDLM
    eval_every: int = 200
    eval_batches: int = 8
    log_every: int = 10
    save_every: int = 500
    out_dir: str = "runs/default"
    seed: int = 0
    precision: str = "fp32"  # fp32 | bf16 (autocast, GPU)
    compile: bool = False
    parallel: str = "ddp"  # ddp | fsdp (used only under torchrun with WORLD_SIZE > 1)
    tensorboard: bool = False
    progress: bool = True
    on_nonfinite: str = "stop"  # a non-finite loss or grad norm: stop (one-line error) | skip (drop that update)
    init_from: str = ""  # a checkpoint dir: start from its weights, fresh optimizer and schedule (train/init_from.py)


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    process: ProcessConfig = field(default_factory=ProcessConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Dataclass -> plain nested dict (tuples become lists) that YAML and JSON can hold."""
    out = dataclasses.asdict(cfg)
    return _lists(out)


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_lists(v) for v in value]
    return value


def from_dict(cls: type, data: dict[str, Any] | None, where: str = "") -> Any:
    """Build dataclass `cls` from a nested dict, checking every key and type. Raises ConfigError."""
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config section '{where or cls.__name__}' must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in known:
            hint = difflib.get_close_matches(key, sorted(known), n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise ConfigError(f"unknown config key '{path}'{suggestion}")
        kwargs[key] = _coerce(hints[key], value, path)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, path: str) -> Any:
    if dataclasses.is_dataclass(tp):
        if isinstance(value, str):
            value = _load_preset(path.split(".")[-1], value)
        return from_dict(tp, value, path)
    origin = typing.get_origin(tp)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"config key '{path}' expects a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        return value if value is None or len(options) != 1 else _coerce(options[0], value, path)
    if tp is float and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            number = float(value)
        except ValueError:
            number = None
        if number is not None and not math.isfinite(number):
            raise ConfigError(f"config key '{path}' expects a finite number, got {value!r}")
        if number is not None:
            return number
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise ConfigError(f"config key '{path}' expects {tp.__name__}, got {type(value).__name__} {value!r}")
    return value


def _load_preset(section: str, name: str) -> dict[str, Any]:
    path = CONFIG_DIR / section / f"{name}.yaml"
    if not path.exists():
        choices = sorted(p.stem for p in (CONFIG_DIR / section).glob("*.yaml"))
        raise ConfigError(f"no {section} preset '{name}' (looked for {path}); choose one of: {', '.join(choices)}")
    return _read_yaml(path)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    return data or {}


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides (values parsed as YAML scalars) to a nested dict, in place."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like section.key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"override '{item}': the value is not valid YAML ({str(err).splitlines()[0]}); "
                              "quote it, e.g. key='[1, 2'") from None
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            if isinstance(node.get(part), str):  # a preset name being refined by an override
                node[part] = _load_preset(part, node[part])
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{key}': '{part}' is not a section")
        node[leaf] = value
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a run YAML (or the defaults when path is None), apply dotted overrides, validate."""
    data = _read_yaml(Path(path)) if path else {}
    apply_overrides(data, list(overrides or []))
    return with_family_defaults(from_dict(RunConfig, data))


def with_family_defaults(cfg: RunConfig) -> RunConfig:
    """cfg with what it left unset (process.name "", objective.time_conditioning None, objective.time_sampler "")
    filled from its objective's declared defaults (objectives/base.py); values a config names are kept. OBJECTIVES is
    filled by `import dlm`, which importing this module implies."""
    family = OBJECTIVES.get_factory(cfg.objective.name)
    process, objective = cfg.process, cfg.objective
    if not process.name:
        process = dataclasses.replace(process, name=family.default_process or "none")
    if objective.time_conditioning is None:
        objective = dataclasses.replace(objective, time_conditioning=family.default_time_conditioning)
    if not objective.time_sampler:
        objective = dataclasses.replace(objective, time_sampler=family.default_time_sampler)
    return dataclasses.replace(cfg, process=process, objective=objective)


def save_config(cfg: RunConfig, path: str | Path, header: str = "") -> None:
    """Write cfg as YAML; `header` (e.g. facts about the machine) goes in a leading comment, ignored on load."""
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    Path(path).write_text(comment + yaml.safe_dump(to_dict(cfg), sort_keys=False))
