"""Collect `dlm eval images` results into one table (JSON + markdown on stdout), beside its targets.

    python -m scripts.experiments.image_table eval_results/mnist_vq_* --codec runs/vq_mnist/metrics.json
Per family: training steps and median training tokens/s (from the run's metrics.jsonl), best-CFG class accuracy,
FD at that scale with the two floors, image->caption accuracy, held-out bound per code, sampling tokens/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from dlm.train.log import read_metrics

TARGETS = {"accuracy": ">= 0.95 at the best CFG scale (masked model)", "fd": "<= 3x fd_codec (masked model)",
           "image_to_caption_accuracy": ">= 0.90"}


def row(folder: Path) -> dict:
    result = json.loads((folder / "images.json").read_text())["result"]
    run = Path(result["checkpoint"]).parent
    records = read_metrics(run / "metrics.jsonl") if (run / "metrics.jsonl").is_file() else []
    rates = [r["tokens_per_s"] for r in records if "tokens_per_s" in r]
    sweep = result["sweep"]
    best = max(sweep, key=lambda r: r.get("accuracy", -r["fd"]))
    return {"folder": folder.name, "family": result["family"], "process": result["process"],
            "train_steps": max((r["step"] for r in records), default=None),
            "train_tokens_per_s": statistics.median(rates) if rates else None,
            "train_minutes": max((r["elapsed_s"] for r in records if "elapsed_s" in r), default=0.0) / 60,
            "best_cfg_scale": best["cfg_scale"], "accuracy": best.get("accuracy"), "fd": best["fd"],
            "fd_over_codec": best["fd"] / result["fd_codec"], "fd_codec": result["fd_codec"],
            "fd_test_vs_train": result["fd_test_vs_train"], "num_samples": best["num_samples"],
            "image_to_caption_accuracy": result.get("image_to_caption_accuracy"),
            "image_to_caption_estimator": result.get("image_to_caption_estimator"),
            "elbo_per_code": result.get("elbo_per_code"), "elbo_per_code_se": result.get("elbo_per_code_se"),
            "sample_tokens_per_s": best["tokens_per_s"], "sweep": sweep}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--codec", default="")
    parser.add_argument("--out", default="runs/images_mnist.json")
    args = parser.parse_args()
    rows = [row(Path(f)) for f in args.folders if (Path(f) / "images.json").is_file()]
    codec = json.loads(Path(args.codec).read_text()) if args.codec and Path(args.codec).is_file() else {}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"codec": codec, "targets": TARGETS, "rows": rows}, indent=2) + "\n")
    print("| folder | family | steps | train min | train tok/s | N | best cfg | class acc | FD | FD/codec FD | "
          "img->caption | nats/code | sample tok/s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
        cap = "-" if r["image_to_caption_accuracy"] is None else f"{r['image_to_caption_accuracy']:.3f}"
        nats = "-" if r["elbo_per_code"] is None else f"{r['elbo_per_code']:.3f} ± {r['elbo_per_code_se']:.3f}"
        print(f"| {r['folder']} | {r['family']} | {r['train_steps']} | {r['train_minutes']:.1f} | "
              f"{r['train_tokens_per_s'] or 0:.0f} | {r['num_samples']} | {r['best_cfg_scale']:g} | {acc} | "
              f"{r['fd']:.2f} | {r['fd_over_codec']:.2f} | {cap} | {nats} | {r['sample_tokens_per_s']:.0f} |")
    if codec:
        print(f"codec: test mse {codec['mse']:.5f}, psnr {codec['psnr_db']:.2f} dB, code perplexity "
              f"{codec['code_perplexity']:.1f} / {codec['codebook_size']}; floors: FD codec / test-vs-train per row")
    print(f"table: {args.out}")


if __name__ == "__main__":
    main()
