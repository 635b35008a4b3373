"""Every held-out mistake of one recipe run, as the command meets it: the split that
``cnnkit train --recipe NAME --seed S`` holds out (10% of each class), the recipe trained
in-process on the rest, then a grid of the misclassified images titled
``label→prediction (probability)`` and a JSON list of them.

It answers "is this split's accuracy limited by the model or by the labels?": on MNIST
seed 1's split ``mnist-long`` stays at 99.33-99.45% whatever it is given (docs/speed.md),
and about a dozen of its 34 mistakes look like the digit it predicted.

    python benchmarks/heldout_mistakes.py --recipe mnist-long --seed 1 --out docs/img/mnist_seed1_mistakes.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402


def command_split(recipe: str, seed: int):
    """The data ``cnnkit train --recipe RECIPE --seed SEED`` trains and evaluates on."""
    from cnnkit.config import TrainConfig
    from cnnkit.run.data import load_data
    if recipe.startswith("mnist"):
        cfg = TrainConfig(data="mnist", data_dir=str(_common.DATASETS / "mnist"), seed=seed)
    else:
        cfg = TrainConfig(data=str(_common.DATASETS / "cifar10-jpeg" / "train"), seed=seed)
    return load_data(cfg)


def mistakes(recipe: str, seed: int) -> tuple[list[dict], object, float]:
    """([{index, label, predicted, probability}], the held-out images, accuracy)."""
    from cnnkit import recipes
    from cnnkit.run.evaluate import evaluate
    data = command_split(recipe, seed)
    vx, vy = data.eval_split
    run = recipes.run_recipe(recipe, train=data.train, val=(vx, vy), seed=seed, verbose=0)
    r = evaluate(run.model, vx, vy, per_sample=True, tta=run.recipe.resolve(run.device).tta,
                 batch_size=1000)
    wrong = np.nonzero(r["predicted"] != r["labels"])[0]
    rows = [{"index": int(i), "label": int(r["labels"][i]), "predicted": int(r["predicted"][i]),
             "probability": round(float(r["probabilities"][i].max()), 3)} for i in wrong]
    return rows, vx, r["accuracy"]


def draw(rows: list[dict], images, title: str, out: Path, columns: int = 9) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n_rows = max(1, -(-len(rows) // columns))
    fig, axes = plt.subplots(n_rows, columns, figsize=(columns, 1.15 * n_rows + 0.3),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, row in zip(axes.flat, rows):
        img = images[row["index"]].permute(1, 2, 0).numpy()  # C,H,W uint8 -> H,W,C
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray_r")
        ax.set_title(f"{row['label']}→{row['predicted']} ({row['probability']:.2f})", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", default="mnist-long")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("heldout_mistakes.png"))
    args = ap.parse_args(argv)
    rows, images, accuracy = mistakes(args.recipe, args.seed)
    title = (f"{args.recipe}, seed {args.seed}'s held-out split ({accuracy:.2%}): its "
             f"{len(rows)} mistakes, label→prediction (probability)")
    draw(rows, images, title, args.out)
    args.out.with_suffix(".json").write_text(json.dumps(
        {"recipe": args.recipe, "seed": args.seed, "accuracy": accuracy, "mistakes": rows},
        indent=1))
    print(f"{title}\n  {args.out} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
