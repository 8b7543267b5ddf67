"""`train.init_from=PATH`: start training from a checkpoint's weights, with a fresh optimizer and schedule.

Two uses (docs/block_diffusion.md):
  * MDLM -> BD3LM (arXiv 2503.09573 §6: the paper fine-tunes an MDLM checkpoint): the same backbone and
    vocabulary, every weight copied. At block_size = L the block model IS the MDLM (objectives/block_diffusion.py),
    so only the attention pattern changes when training continues at a smaller block size.
  * AR -> diffusion (the AR-to-diffusion adaptation of DiffuLLaMA arXiv 2410.17891, SDAR, Fast-dLLM v2): an
    autoregressive checkpoint of the same backbone. Its vocabulary has no mask token, so the embedding and output
    rows of the data tokens are copied and the mask's rows keep their fresh initialization. The AR head read
    position j - 1 to predict token j. Two options for the logit shift (objectives/block_diffusion.py):
    objective.logit_shift=false (default): position j predicts token j (the SUBS denoiser of BD3LM), so the head
    starts one position off and fine-tuning moves it; objective.logit_shift=true keeps the AR reading (token j from
    the output at j - 1), as DiffuLLaMA, Dream and Fast-dLLM v2 do: a block-size-1 model converted this way
    starts as the AR model exactly (its next-token logits and likelihood; tests/block/test_init_from.py).
Anything else that differs (model sizes, time conditioning, class labels, another vocabulary) is a one-line
ConfigError naming the first mismatch.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dlm.diffusion_lm import DiffusionLM
from dlm.registry import ConfigError

TOKEN_ROWS = ("backbone.embed.weight", "backbone.head.weight", "backbone.head.bias")  # (width, ...) per token id


def init_from(model: DiffusionLM, path: str | Path) -> None:
    """Copy the weights of the checkpoint at `path` into `model` (a DiffusionLM), in place."""
    source = DiffusionLM.from_pretrained(str(path), load_tokenizer=False)
    if source.vocab_size != model.vocab_size:
        raise ConfigError(f"train.init_from={path}: its vocabulary has {source.vocab_size} tokens, this model's "
                          f"{model.vocab_size}; use the same tokenizer")
    theirs, ours = source.state_dict(), model.state_dict()
    names = sorted(set(theirs) ^ set(ours))
    if names:
        raise ConfigError(f"train.init_from={path}: a different backbone (weight {names[0]!r} is in only one of "
                          "them: time conditioning, class labels or learned positions differ)")
    with torch.no_grad():
        for name, value in ours.items():
            source_value = theirs[name]
            if name in TOKEN_ROWS and source_value.shape[1:] == value.shape[1:] and \
                    source_value.shape[0] == model.vocab_size < value.shape[0]:
                value[:model.vocab_size] = source_value  # AR -> masked: the mask's row stays fresh
            elif source_value.shape == value.shape:
                value.copy_(source_value)
            else:
                raise ConfigError(f"train.init_from={path}: a different backbone ({name} is "
                                  f"{tuple(source_value.shape)} there, {tuple(value.shape)} here)")
