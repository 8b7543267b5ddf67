"""DLMConfig: the Hugging Face config of a dlm checkpoint. It holds the whole model recipe, so a checkpoint
describes itself: backbone sizes, process + schedule, objective (parameterization), vocabulary and mask id."""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

from dlm.config import DataConfig, ModelConfig, ObjectiveConfig, ProcessConfig, RunConfig, from_dict, to_dict


class DLMConfig(PretrainedConfig):
    model_type = "dlm"

    def __init__(self, run: dict[str, Any] | None = None, vocab_size: int = 0, mask_id: int | None = None,
                 **kwargs: Any):
        self.run = run or {}
        self.vocab_size = vocab_size
        self.mask_id = mask_id
        super().__init__(**kwargs)

    @classmethod
    def from_run_config(cls, cfg: RunConfig, vocab_size: int, mask_id: int | None) -> DLMConfig:
        sections = to_dict(cfg)
        sections.pop("train")  # how it was trained is not part of what the model is
        return cls(run=sections, vocab_size=vocab_size, mask_id=mask_id)

    def to_run_config(self) -> RunConfig:
        run = self.run
        return RunConfig(
            model=from_dict(ModelConfig, run.get("model"), "model"),
            process=from_dict(ProcessConfig, run.get("process"), "process"),
            objective=from_dict(ObjectiveConfig, run.get("objective"), "objective"),
            data=from_dict(DataConfig, run.get("data"), "data"),
        )
