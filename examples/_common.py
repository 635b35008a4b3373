"""Shared bits of the tutorial examples: where the real data is, where pictures go."""

import argparse
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("CNNKIT_SHARED_DATASETS", REPO.parent / "shared" / "datasets"))


def parse_args(description: str, epochs: int, bf16_option: bool = False):
    parser = argparse.ArgumentParser(description=description)
    if bf16_option:
        parser.add_argument("--bf16", action="store_true",
                            help="bfloat16 convolutions, Dense layers kept float32 "
                                 "(faster on CPUs with AVX512-BF16/AMX, and on GPUs)")
        parser.add_argument("--jit-compile", action="store_true",
                            help="compiled pooling kernels for the conv blocks on CPUs "
                                 "(compile(jit_compile=True); same results, seconds to compile)")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--data", type=Path, default=DATASETS, help="folder holding mnist/ and cifar10-jpeg/")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "examples", help="where plots go")
    parser.add_argument("--limit", type=int, default=None, help="use only this many training images")
    parser.add_argument("--seed", type=int, default=None,
                        help="keras.utils.set_random_seed(SEED) first, for a repeatable run")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.seed is not None:
        from cnnkit.utils import set_random_seed
        set_random_seed(args.seed)
    return args


def plot_accuracy(history, path):
    """The tutorial's plot: training and validation accuracy per epoch."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.figure()
    plt.plot(history.history["accuracy"], label="train acc")
    plt.plot(history.history["val_accuracy"], label="val acc")
    plt.xlabel("Epoch")
    plt.ylabel("Accuracy")
    plt.legend()
    plt.title("Training and Validation Accuracy")
    plt.savefig(path, dpi=100)
    plt.close()
    print(f"accuracy curves: {path}")
