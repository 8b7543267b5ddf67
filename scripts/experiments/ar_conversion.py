"""AR -> block diffusion conversion with and without objective.logit_shift, as
docs/block_diffusion.md#starting-from-a-checkpoint describes: the held-out bound of a BD3LM (blocks of 4)
initialized from an AR checkpoint (train.init_from's copy), at step 0 and after `--steps` fine-tuning steps (AdamW
lr 5e-4, batch 16, the same draws for both), and the exact block-size-1 likelihood at step 0, against the AR
model's exact NLL on the same scored tokens.

    python -m scripts.experiments.ar_conversion --checkpoint ../ckpt/shakespeare_char_ar_d128l3 --steps 300

Writes JSON (--out). One thread; the machine's load is recorded (timings are inflated by other jobs).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import dlm
from dlm.data import build_splits
from dlm.train.init_from import init_from


def converted(checkpoint: str, ar: dlm.DiffusionLM, *overrides: str) -> dlm.DiffusionLM:
    """A block-diffusion model of the AR checkpoint's backbone, initialized from it."""
    run = ar.config
    sizes = [f"model.{key}={getattr(run.model, key)}" for key in ("d_model", "n_layers", "n_heads", "cond_dim",
                                                                    "max_len")]
    torch.manual_seed(0)
    cfg = dlm.load_config(None, [*sizes, f"data.seq_len={run.data.seq_len}", "objective.name=block_diffusion",
                                 *overrides])
    model = dlm.DiffusionLM.from_config(cfg, vocab_size=ar.vocab_size)
    init_from(model, checkpoint)
    return model


def per_token_bound(model: dlm.DiffusionLM, val: torch.Tensor, scored: torch.Tensor, n_t: int) -> float:
    model.eval()
    with torch.no_grad():
        bound = model.elbo(val, n_t=n_t, generator=torch.Generator().manual_seed(0), attention_mask=scored)
    return float(bound.sum() / scored.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="an autoregressive dlm checkpoint")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--val-rows", type=int, default=48)
    parser.add_argument("--n-t", type=int, default=8)
    parser.add_argument("--out", default="benchmarks/ar_conversion.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ar = dlm.DiffusionLM.from_pretrained(args.checkpoint).eval()
    train_ids, _, val_ids, _ = build_splits(ar.config.data, ar.tokenizer)
    val = val_ids[:args.val_rows]
    scored = torch.ones_like(val, dtype=torch.float64)
    scored[:, 0] = 0  # the AR model's context token: every model scores positions 1..L-1
    with torch.no_grad():
        out = {"checkpoint": args.checkpoint, "steps": args.steps, "val_rows": len(val), "n_t": args.n_t,
               "load": open("/proc/loadavg").read().split()[:3],
               "ar_exact_nats_per_token": float(ar.elbo(val, attention_mask=scored).sum() / scored.sum())}
    for shift in (False, True):
        flag = f"objective.logit_shift={str(shift).lower()}"
        exact = converted(args.checkpoint, ar, "objective.block_size=1", "objective.clip=[1.0,1.0]", flag)
        model = converted(args.checkpoint, ar, "objective.block_size=4", flag)
        result = {"block1_step0_exact": per_token_bound(exact, val, scored, 1),
                  "block4_step0_bound": per_token_bound(model, val, scored, args.n_t)}
        optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4)
        generator = torch.Generator().manual_seed(1)
        model.train()
        start = time.perf_counter()
        for _ in range(args.steps):
            batch = train_ids[torch.randint(0, len(train_ids), (16,), generator=generator)]
            optimizer.zero_grad()
            model.loss(batch, generator=generator).loss.backward()
            optimizer.step()
        result.update(train_seconds=time.perf_counter() - start,
                      block4_final_bound=per_token_bound(model, val, scored, args.n_t))
        out[f"logit_shift_{str(shift).lower()}"] = result
        print(json.dumps({f"logit_shift={shift}": result}), flush=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
