"""DICE editing of Tiny Shakespeare speeches to another speaker type, against masked inpainting (arXiv 2410.08207).

Data, labels, judge and the class-conditional MDLM come from examples/cfg_labels.py (imported, not copied): the first
`--length` characters of every speech, speaker type K = 4 (king, queen, duke, numbered minor role), a character-
trigram naive Bayes judge, a class-conditional masked diffusion LM trained with condition dropout.
Edit: every typed held-out speech (>= 200) to the paired type: king <-> queen, duke <-> minor role.
  DICE: invert under the source label (dlm.edit.invert, target onehot_margin, K = `--steps`), edit under the target
        label with label CFG scale `--cfg` (dlm.edit.edit, rule add, lambda2 = 1 - lambda1), over a grid of tau and
        lambda1. Reconstruction (source label, lambda1 = 1, lambda2 = 0) is checked bit-exact for every tau.
  Inpainting (the paper's baseline): the positions DICE may mask at the same tau (M_K: the same u, a tau-fraction)
        are masked and resampled under the target label by the ancestral sampler with the same K steps and the same
        denoiser, so both spend K evaluations per edit (plus DICE's K + 1 for the inversion).
Metrics per setting: success = judge(edit) == target type; kept = fraction of characters unchanged; edit distance =
Levenshtein(source, edit) / length; fluency = perplexity of the edits under a small character AR model trained on
the same training speeches ([BOS] + text, all characters scored).

    nice -n 10 python -m examples.dice_text --out benchmarks/demo_dice      (about 20 minutes on a loaded CPU core)
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

import dlm
from dlm.data import build_tokenizer
from dlm.data.paths import CORPUS_DIR
from dlm.edit import edit, invert
from dlm.guidance import label_guidance
from dlm.sample import generate
from examples import cfg_labels
from scripts.bench.harness import write_outputs

PAIR = {0: 1, 1: 0, 2: 3, 3: 2}  # king <-> queen, duke <-> numbered minor role
AR_MODEL = ["model.d_model=96", "model.n_layers=3", "model.n_heads=4", "objective.name=autoregressive",
            "objective.time_conditioning=false"]


def train_reference(ids: torch.Tensor, bos: int, vocab: int, args) -> dlm.DiffusionLM:
    """A causal character LM on [BOS] + text for args.ar_seconds (AdamW, constant lr after 50 warmup steps)."""
    x = torch.cat([torch.full((len(ids), 1), bos), ids], 1)
    cfg = dlm.load_config(None, [*AR_MODEL, f"model.max_len={x.shape[1]}"])
    model = dlm.DiffusionLM.from_config(cfg, vocab_size=vocab)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(args.seed + 1)
    start, step = time.perf_counter(), 0
    while time.perf_counter() - start < args.ar_seconds:
        for group in opt.param_groups:
            group["lr"] = args.lr * min(1.0, (step + 1) / 50)
        loss = model.loss(x[torch.randint(0, len(x), (args.batch,), generator=gen)], generator=gen).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
    print(f"AR reference: {step} steps, last loss {loss.item():.3f}", flush=True)
    return model.eval()


@torch.no_grad()
def perplexity(reference, ids: torch.Tensor, bos: int) -> float:
    """exp(mean NLL per character) of rows ids (B, L) under the causal reference, BOS-prefixed."""
    x = torch.cat([torch.full((len(ids), 1), bos), ids], 1)
    log_probs = reference(x, None).log_probs[:, :-1]
    return math.exp(float(-log_probs.gather(-1, x[:, 1:, None]).double().mean()))


def cached(path: Path, train) -> dlm.DiffusionLM:
    """The model saved at `path`, else train() saved there (reruns of the evaluation skip training)."""
    if (path / "model.safetensors").is_file():
        print(f"loading {path}", flush=True)
        return dlm.DiffusionLM.from_pretrained(str(path)).eval()
    model = train()
    model.save_pretrained(str(path))
    return model


def levenshtein(a: list[int], b: list[int]) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def metrics(edited: torch.Tensor, source: torch.Tensor, target: torch.Tensor, judge, tokenizer, reference,
            bos: int) -> dict:
    texts = tokenizer.batch_decode(edited.tolist(), skip_special_tokens=True)
    length = source.shape[1]
    return {"success": sum(judge.predict(t) == int(y) for t, y in zip(texts, target)) / len(texts),
            "kept": float((edited == source).double().mean()),
            "edit_distance": sum(levenshtein(a, b) for a, b in zip(source.tolist(), edited.tolist()))
            / (length * len(texts)),
            "ppl": perplexity(reference, edited, bos), "example": texts[0]}


def inpaint(model, process, source: torch.Tensor, hole: torch.Tensor, denoiser, steps: int, seed: int) -> torch.Tensor:
    """Mask `hole` (B, L) and resample it with the ancestral sampler; the rest is clamped to the source."""
    return generate(denoiser, process, "ancestral", steps=steps, prompt=source, prompt_mask=~hole,
                    generator=torch.Generator().manual_seed(seed))


def run_grid(model, source, src_label, tgt_label, judge, tokenizer, reference, bos, args) -> list[dict]:
    process, rows = model.process, []
    src = lambda x, t: model(x, t, label=src_label)  # noqa: E731
    tgt = label_guidance(model, tgt_label, args.cfg)
    for tau in [float(v) for v in args.taus.split(",")]:
        begin = time.perf_counter()
        trace = invert(src, process, source, steps=args.steps, tau=tau,
                       generator=torch.Generator().manual_seed(args.seed))
        recon = edit(src, trace, lambda1=1.0, lambda2=0.0)
        exact = float((recon == source).all(1).double().mean())
        print(f"tau={tau}: trace {trace.nbytes / 2**20:.1f} MiB, reconstruction exact on {exact:.1%} of lines "
              f"({time.perf_counter() - begin:.0f}s)", flush=True)
        for lambda1 in [float(v) for v in args.lambdas.split(",")]:
            edited = edit(tgt, trace, lambda1=lambda1, generator=torch.Generator().manual_seed(args.seed))
            row = {"method": "dice", "tau": tau, "lambda1": lambda1, "reconstruction_exact": exact,
                   **metrics(edited, source, tgt_label, judge, tokenizer, reference, bos)}
            rows.append(row)
            print(f"  DICE lambda1={lambda1:.2f}  success {row['success']:.3f}  kept {row['kept']:.3f}  "
                  f"ppl {row['ppl']:.2f}", flush=True)
    for tau in [float(v) for v in args.inpaint_taus.split(",")]:
        # the same seed draws the same u, so the hole {u <= tau} is the M_K that DICE's trace at this tau has
        hole = invert(src, process, source, steps=2, tau=tau,
                      generator=torch.Generator().manual_seed(args.seed)).masked(1)
        edited = inpaint(model, process, source, hole, tgt, args.steps, args.seed)
        row = {"method": "inpaint", "tau": tau, **metrics(edited, source, tgt_label, judge, tokenizer, reference, bos)}
        rows.append(row)
        print(f"inpaint tau={tau}  success {row['success']:.3f}  kept {row['kept']:.3f}  ppl {row['ppl']:.2f}",
              flush=True)
    return rows


def plot(rows: list[dict], source_row: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, (key, name) in zip(axes, [("kept", "fraction of characters kept"), ("ppl", "AR reference perplexity")]):
        for tau in sorted({r["tau"] for r in rows if r["method"] == "dice"}):
            dice = [r for r in rows if r["method"] == "dice" and r["tau"] == tau]
            ax.plot([r[key] for r in dice], [r["success"] for r in dice], marker="o", label=f"DICE tau={tau:g}")
            for r in dice:
                ax.annotate(f"{r['lambda1']:g}", (r[key], r["success"]), fontsize=6)
        paint = sorted((r for r in rows if r["method"] == "inpaint"), key=lambda r: r["tau"])
        ax.plot([r[key] for r in paint], [r["success"] for r in paint], marker="s", color="k", ls="--",
                label="masked inpainting (tau)")
        ax.scatter([source_row[key]], [source_row["success"]], marker="*", s=120, color="grey", label="source")
        ax.set(xlabel=name, ylabel="edit success (judge says target type)")
        ax.legend(fontsize=7)
    axes[1].invert_xaxis()
    fig.suptitle("DICE vs masked inpainting: speaker-type edits on Tiny Shakespeare (labels: lambda1)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=48)
    parser.add_argument("--train-seconds", type=float, default=240)
    parser.add_argument("--ar-seconds", type=float, default=90)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--cfg", type=float, default=0.0, help="label CFG scale of the editing denoiser")
    parser.add_argument("--taus", default="0.5,0.7,0.9", help="DICE strengths")
    parser.add_argument("--lambdas", default="0,0.03,0.06,0.1,0.15", help="DICE lambda1 (lambda2 = 1 - lambda1)")
    parser.add_argument("--inpaint-taus", default="0.1,0.3,0.5,0.7,0.9", help="fractions masked for inpainting")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", default="outputs/demo_dice_models", help="trained models are saved/reused here")
    parser.add_argument("--out", default="outputs/demo_dice", help="writes OUT.json and OUT.png")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    begin = time.perf_counter()
    texts, labels = cfg_labels.speeches(args.length)
    order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(args.seed)).tolist()
    train_rows, held_rows = order[:int(0.8 * len(order))], order[int(0.8 * len(order)):]
    typed = [i for i in train_rows if labels[i] < cfg_labels.CLASSES]
    judge = cfg_labels.TrigramJudge([texts[i] for i in typed], [labels[i] for i in typed])
    held = [i for i in held_rows if labels[i] < cfg_labels.CLASSES]
    tokenizer = build_tokenizer("char", [(CORPUS_DIR / "tinyshakespeare.txt").read_text()])
    encode = lambda rows: torch.tensor([tokenizer(texts[i], add_special_tokens=False)["input_ids"]  # noqa: E731
                                        for i in rows])
    train_ids = encode(train_rows)
    model = cached(Path(args.cache) / "conditional", lambda: cfg_labels.train(
        train_ids, torch.tensor([labels[i] for i in train_rows]), len(tokenizer), args))
    reference = cached(Path(args.cache) / "reference", lambda: train_reference(
        train_ids, tokenizer.bos_token_id, len(tokenizer), args))
    source = encode(held)
    src_label = torch.tensor([labels[i] for i in held])
    tgt_label = torch.tensor([PAIR[int(y)] for y in src_label])
    bos = tokenizer.bos_token_id
    source_row = metrics(source, source, tgt_label, judge, tokenizer, reference, bos)
    source_row["judge_accuracy_on_source_labels"] = judge.accuracy([texts[i] for i in held], src_label.tolist())
    print(f"{len(held)} held-out lines; source: {source_row}", flush=True)
    rows = run_grid(model, source, src_label, tgt_label, judge, tokenizer, reference, bos, args)
    meta = {k: v for k, v in vars(args).items() if k != "out"} | {
        "lines": len(held), "model": cfg_labels.MODEL, "reference": AR_MODEL, "pairs": PAIR,
        "wall_seconds": round(time.perf_counter() - begin)}
    write_outputs(args.out, {"meta": meta, "source": source_row, "results": rows},
                  lambda path: plot(rows, source_row, path))


if __name__ == "__main__":
    main()
