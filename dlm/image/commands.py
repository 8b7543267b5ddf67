"""`dlm vq train|encode|decode` and `dlm eval images`: typed command functions (flags come from the signatures).

    dlm vq train --data mnist --codebook 256 --downsample 4 --steps 2000 --out runs/vq_mnist
    dlm vq encode --codec runs/vq_mnist/final --data mnist --split test      # -> <codec>/codes/mnist-test.safetensors
    dlm vq decode --codec runs/vq_mnist/final --codes <codes.safetensors> --out recon.png
    dlm eval images --checkpoint runs/mnist_vq_mdlm/final --out eval_results/mnist_vq_mdlm
Heavy imports happen inside the functions.
"""

from __future__ import annotations

import json
from pathlib import Path

from dlm.registry import ConfigError


def vq_train_command(data: str = "mnist", codebook: int = 256, downsample: int = 4, steps: int = 2000,
                     batch_size: int = 128, lr: float = 2e-3, hidden: int = 64, code_dim: int = 32,
                     decay: float = 0.9, dead_code_threshold: float = 1.0, seed: int = 0, save_every: int = 500,
                     out: str = "runs/vq", resume: bool = False, no_progress: bool = False) -> dict:
    """Train a VQ-VAE codec on a dataset's train split; writes <out>/final and reports test MSE / PSNR / usage.

    Args:
        data: mnist, fashion-mnist or binarized-mnist.
        codebook: K, the number of codes.
        downsample: f (a power of 2): an image becomes (H/f) x (W/f) codes.
        steps: optimizer steps.
        batch_size: images per step.
        lr: Adam learning rate.
        hidden: channels of the convolutional encoder and decoder.
        code_dim: dimension of each code vector.
        decay: EMA decay of the codebook.
        dead_code_threshold: EMA usage below which a code is re-seeded from the batch.
        seed: seed of the initialization and the batch order.
        save_every: steps between checkpoints (<out>/checkpoints, atomic).
        out: output directory (<out>/final, <out>/metrics.json).
        resume: continue <out>/checkpoints from its latest checkpoint.
        no_progress: no progress bar.
    """
    from dlm.image.codec import CodecConfig
    from dlm.image.codec_trainer import CodecTraining, reconstruction_metrics, train_codec
    from dlm.image.datasets import load_images

    images = load_images(data, "train")
    _, c, h, w = images.images.shape
    cfg = CodecConfig(in_channels=c, image_size=h, codebook_size=codebook, downsample=downsample, hidden=hidden,
                      code_dim=code_dim, decay=decay, dead_code_threshold=dead_code_threshold, dataset=data)
    training = CodecTraining(steps=steps, batch_size=batch_size, lr=lr, seed=seed, save_every=save_every,
                             progress=not no_progress)
    codec = train_codec(cfg, images, out, training, resume=resume)
    metrics = {"dataset": data, "split": "test", "codebook_size": codebook, "downsample": downsample,
               "steps": steps, **reconstruction_metrics(codec, load_images(data, "test"))}
    Path(out, "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"test mse {metrics['mse']:.5f}  psnr {metrics['psnr_db']:.2f} dB  code perplexity "
          f"{metrics['code_perplexity']:.1f} / {codebook}  codes used {100 * metrics['codes_used']:.1f}%\n"
          f"codec: {Path(out) / 'final'}")
    return metrics


def vq_encode_command(codec: str, data: str = "mnist", split: str = "train", out: str = "",
                      batch_size: int = 512) -> str:
    """Encode a dataset split into a code dataset (.safetensors: codes (N, h, w) + labels).

    Args:
        codec: a trained codec dir (e.g. runs/vq_mnist/final).
        data: mnist, fashion-mnist or binarized-mnist.
        split: train or test.
        out: the .safetensors file (default <codec>/codes/<data>-<split>.safetensors, where the vq: data source
            finds it).
        batch_size: images per encoder call.
    """
    from dlm.image.codec import VQCodec
    from dlm.image.datasets import load_images
    from dlm.image.source import CODES_DIR
    from dlm.image.tokens import code_perplexity, encode_images

    model = VQCodec.from_pretrained(codec)
    codes = encode_images(model, load_images(data, split), batch_size=batch_size, dataset=data, split=split)
    path = Path(out) if out else Path(codec) / CODES_DIR / f"{data}-{split}.safetensors"
    codes.save(path, codec=str(codec))
    usage = code_perplexity(codes.codes, model.cfg.codebook_size)
    print(f"{len(codes)} images -> codes {tuple(codes.codes.shape[1:])}, code perplexity "
          f"{usage['code_perplexity']:.1f}\ncodes: {path}")
    return str(path)


def vq_decode_command(codec: str, codes: str, out: str = "decoded.png", num_images: int = 64, rows: int = 8) -> str:
    """Decode the first num_images code grids of a code dataset back to pixels and write them as a PNG grid.

    Args:
        codec: the codec dir the codes were made with.
        codes: a code dataset (.safetensors from dlm vq encode).
        out: the PNG file.
        num_images: how many code grids to decode (from the first).
        rows: rows of the PNG grid.
    """
    from dlm.image.codec import VQCodec
    from dlm.image.png import grid, write_png
    from dlm.image.tokens import CodeSet

    if num_images < 1:
        raise ConfigError(f"--num-images={num_images} must be at least 1")
    images = VQCodec.from_pretrained(codec).decode(CodeSet.load(codes).codes[:num_images])
    path = write_png(out, grid(images.cpu(), rows=min(rows, len(images))))
    print(f"decoded {len(images)} images: {path}")
    return str(path)


def images_command(checkpoint: str, out: str = "", codec: str = "", num_samples: int = 1000,
                   cfg_scales: str = "0,1,2", steps: int = 0, sampler: str = "", caption_images: int = 1000,
                   elbo_images: int = 500, n_t: int = 8, batch_size: int = 250, classifier: str = "",
                   classifier_epochs: float = 1.0, seed: int = 0) -> dict:
    """Sample FD (with test-vs-train and codec floors), class accuracy over CFG scales, image->caption accuracy,
    held-out ELBO per code and PNG grids for a checkpoint trained on a vq:/vqtext: source (JSON in <out>).

    Args:
        checkpoint: a dlm checkpoint dir trained on a vq: or vqtext: source.
        out: output folder for images.json and the PNG grids (default eval_results/images_<run>).
        codec: the codec dir (default: the one the checkpoint's data source names).
        num_samples: sampled images per CFG scale (and reference images for FD).
        cfg_scales: comma-separated CFG scales, masked models only (others use 0).
        steps: reverse steps (default: one per image position).
        sampler: a registered sampler (default ancestral; an autoregressive checkpoint decodes left to right).
        caption_images: test images scored for image->caption accuracy (0: skip).
        elbo_images: test images of the held-out ELBO per code (0: skip).
        n_t: time samples per bound (held-out ELBO; each candidate caption of image->caption).
        batch_size: rows per model call.
        classifier: a feature-classifier dir (default <out>/classifier, trained there when missing).
        classifier_epochs: training epochs of that classifier when it is trained.
        seed: seed of every random draw.
    """
    arguments = dict(locals())
    import torch

    from dlm.eval.report import provenance, write_json
    from dlm.image import evaluate
    from dlm.image.image_model import ImageModel

    im = ImageModel.load(checkpoint, codec)
    folder = Path(out or Path("eval_results") / f"images_{Path(checkpoint).parent.name}")
    steps = steps or im.layout.image_end - im.layout.image_start
    scales = [float(x) for x in cfg_scales.split(",") if x.strip()] or [0.0]
    if not (im.vocab.has_text and im.model.mask_id is not None):
        scales = [0.0]  # CFG on the caption masks it: masked processes only
    judge = evaluate.classifier_for(im.source.dataset, classifier or folder / "classifier",
                                    epochs=classifier_epochs, seed=seed)
    result: dict = {"checkpoint": checkpoint, "dataset": im.source.dataset, "steps": steps,
                    "family": im.model.config.objective.name, "process": im.model.config.process.name,
                    **evaluate.floors(im, judge, num_samples, torch.Generator().manual_seed(seed))}
    result["sweep"] = evaluate.sample_sweep(im, judge, scales, num_samples, steps=steps, batch_size=batch_size,
                                            sampler=sampler, out=folder, seed=seed)
    if im.vocab.has_text and caption_images > 0:
        result.update(evaluate.caption_accuracy(im, caption_images, n_t=n_t, batch_size=batch_size, seed=seed))
    if elbo_images > 0:
        result.update(evaluate.held_out_elbo(im, elbo_images, n_t=n_t, batch_size=batch_size, seed=seed))
    evaluate.inpainting_grid(im, folder, steps=steps, seed=seed)
    write_json(folder / "images.json", {"provenance": provenance("dlm eval images", arguments), "result": result})
    best = min(result["sweep"], key=lambda r: r["fd"])
    print(f"FD {best['fd']:.2f} at cfg {best['cfg_scale']:g} (floors: codec {result['fd_codec']:.2f}, test-vs-train "
          f"{result['fd_test_vs_train']:.2f}); accuracy {best.get('accuracy', float('nan')):.3f}; "
          f"image->caption {result.get('image_to_caption_accuracy', float('nan')):.3f}; "
          f"elbo/code {result.get('elbo_per_code', float('nan')):.3f} nats\nresults: {folder / 'images.json'}")
    return result


VQ_COMMANDS = {"train": vq_train_command, "encode": vq_encode_command, "decode": vq_decode_command}
