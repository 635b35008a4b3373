"""The ``cnnkit`` command line.

    cnnkit train                      # the default model on the bundled MNIST sample, offline
    cnnkit summary MODEL_DIR
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def _bundled():
    from importlib import resources
    with resources.files("cnnkit.data").joinpath("bundled/mnist_small.npz").open("rb") as f:
        d = np.load(f)
        return (d["x_train"], d["y_train"].astype(np.int64)), (d["x_test"], d["y_test"].astype(np.int64))


def default_model():
    """Seed 001's two-conv Keras network for 28×28×1 digits."""
    from . import Sequential, layers
    return Sequential([
        layers.Input((28, 28, 1)),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ], name="mnist-2conv")


def cmd_train(args) -> int:
    from .utils import set_random_seed
    set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = _bundled()
    model = default_model()
    model.class_names = [str(i) for i in range(10)]
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
              validation_data=(x_test, y_test), seed=args.seed)
    seconds = time.perf_counter() - start
    loss, acc = model.evaluate(x_test, y_test, verbose=0)
    print(f"test accuracy: {acc:.4f} (loss {loss:.4f}) on {len(x_test)} held-out digits; "
          f"trained {args.epochs} epochs in {seconds:.1f}s")
    if args.output:
        model.save(args.output)
        print(f"model saved to {args.output}")
    return 0


def cmd_summary(args) -> int:
    from . import load_model
    load_model(args.model).summary()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnkit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    train = sub.add_parser("train", help="train a model (default: the bundled MNIST sample)")
    train.add_argument("--epochs", type=int, default=5)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--output", default=None, help="folder to save the trained model in")
    train.set_defaults(func=cmd_train)
    summary = sub.add_parser("summary", help="print a saved model's summary")
    summary.add_argument("model")
    summary.set_defaults(func=cmd_summary)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
