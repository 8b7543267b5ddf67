"""DICE on images (arXiv 2410.08207): invert MNIST test digits under their own caption, replay them under another
class's caption (ImageModel.edit_caption), decode and judge.

    python -m examples.dice_image --checkpoint runs/mnist_vq_mdlm/final --classifier eval_results/mnist_classifier

Writes OUT.png (--out, default runs/images_mnist_dice; the published copy is benchmarks/images_mnist_dice; row 0:
the sources, one per class; then one row per target shift s, the source of class y edited under the caption of
class (y + s) mod 10) and OUT.json:
reconstruction exactness (lambda1 = 1, lambda2 = 0, same caption), and per lambda1 the judge's accuracy on the
edits against the target class and the fraction of codes changed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dlm.image.evaluate import classifier_for
from dlm.image.image_model import ImageModel
from dlm.image.png import grid, write_png


def per_class_sources(im: ImageModel, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `per_class` test rows of every class, class-major."""
    rows, labels = im.source.rows("test")
    pick = torch.cat([torch.nonzero(labels == c).flatten()[:per_class] for c in range(len(im.captions()))])
    return rows[pick], labels[pick]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default="runs/mnist_vq_mdlm/final")
    parser.add_argument("--classifier", default="eval_results/mnist_classifier")
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--tau", type=float, default=0.7)
    parser.add_argument("--lambdas", default="0.3,0.5,0.7")
    parser.add_argument("--out", default="runs/images_mnist_dice")
    args = parser.parse_args()
    im = ImageModel.load(args.checkpoint)
    judge = classifier_for(im.source.dataset, args.classifier)
    rows, labels = per_class_sources(im, args.per_class)
    classes = len(im.captions())
    same = im.edit_caption(rows, labels, steps=args.steps, tau=args.tau, lambda1=1.0, lambda2=0.0,
                           generator=torch.Generator().manual_seed(0))
    image = im.layout.mask("image")[0]
    result = {"checkpoint": args.checkpoint, "steps": args.steps, "tau": args.tau, "n": len(rows),
              "reconstruction_exact": float((same == rows).all(-1).double().mean()), "edits": []}
    targets = (labels + 1) % classes
    for lam in [float(x) for x in args.lambdas.split(",")]:
        edited = im.edit_caption(rows, targets, steps=args.steps, tau=args.tau, lambda1=lam,
                                 generator=torch.Generator().manual_seed(0))
        predicted = judge.predict(im.decode(edited))
        result["edits"].append({"lambda1": lam, "target_accuracy": float((predicted == targets).double().mean()),
                                "source_accuracy": float((predicted == labels).double().mean()),
                                "codes_changed": float((edited[:, image] != rows[:, image]).double().mean())})
        print(result["edits"][-1])
    first = torch.arange(classes) * args.per_class  # one source per class for the picture
    lam = result["edits"][-1]["lambda1"]
    shown = [im.decode(rows[first])]
    for shift in (1, 3, 5):
        target = (labels[first] + shift) % classes
        shown.append(im.decode(im.edit_caption(rows[first], target, steps=args.steps, tau=args.tau, lambda1=lam,
                                               generator=torch.Generator().manual_seed(0))))
    write_png(f"{args.out}.png", grid(torch.cat(shown), rows=len(shown)))
    result["png_rows"] = {"lambda1": lam, "shifts": [1, 3, 5]}
    Path(f"{args.out}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"reconstruction exact {result['reconstruction_exact']:.3f}; results: {args.out}.json")


if __name__ == "__main__":
    main()
