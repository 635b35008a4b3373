"""Transfer learning, the tutorials' way and in one call.

The tutorials end with::

    base_model = ResNet50(weights='imagenet', include_top=False, input_shape=(224, 224, 3))
    base_model.trainable = False
    model = Sequential([base_model, GlobalAveragePooling2D(), Dense(1024, activation='relu'),
                        Dense(num_classes, activation='softmax')])

In cnnkit that is ``keras_style()`` below, unchanged except for the import, and it is
right by default: the frozen base's BatchNorm layers stay in inference mode, the ImageNet
preprocessing travels inside the model, and the weights are cached for offline use.
``one_call()`` does the same with ``cnnkit.transfer`` and the two-stage ``fine_tune``.

    python examples/transfer_learning.py                      # a small generated image folder
    python examples/transfer_learning.py --data PATH/TO/FOLDER --backbone resnet50 --size 224

``--weights imagenet`` (the default) downloads torchvision's weights once into
~/.cache/cnnkit/weights (CNNKIT_CACHE moves it); offline, cnnkit says which file to put
where, and this example then goes on from random weights (``--weights none``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import cnnkit
from cnnkit import layers
from cnnkit.datasets import image_dataset_from_directory
from cnnkit.models.transfer import fine_tune
from cnnkit.models.weights import WeightsUnavailableError


def keras_style(num_classes: int, weights="imagenet", size: int = 224):
    """The tutorial's code, in cnnkit."""
    base_model = cnnkit.applications.ResNet50(weights=weights, include_top=False, input_shape=(size, size, 3))
    base_model.trainable = False  # weights frozen AND BatchNorm in inference mode
    model = cnnkit.Sequential([
        layers.Input((size, size, 3)),
        base_model,
        layers.GlobalAveragePooling2D(),
        layers.Dense(1024, activation="relu"),
        layers.Dense(num_classes, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def one_call(train, val, backbone: str, weights, size: int, head_epochs: int, epochs: int, blocks):
    """``cnnkit.transfer`` + ``fine_tune``: head first with the base frozen, then the last blocks
    at lower, per-block learning rates."""
    model = cnnkit.transfer(backbone, len(train.class_names), weights=weights, input_shape=(size, size, 3),
                            class_names=train.class_names)
    model.summary()
    fine_tune(model, train, head_epochs=head_epochs, epochs=epochs, blocks=blocks, lr=1e-3, fine_tune_lr=1e-4,
              validation_data=val, batch_size=32)
    return model


def _demo_folder(root: Path, per_class: int = 40, size: int = 48) -> Path:
    """Three classes of generated pictures (stripes, rings, blobs), for a run with no data."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] / size
    makers = {
        "stripes": lambda f: np.sin(2 * np.pi * f * (xx + yy)),
        "rings": lambda f: np.sin(2 * np.pi * f * np.hypot(xx - 0.5, yy - 0.5)),
        "blobs": lambda f: np.exp(-((xx - f / 8) ** 2 + (yy - 0.5) ** 2) * 20) * 2 - 1,
    }
    for name, make in makers.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            g = make(rng.uniform(2, 6)) * 100 + 128 + rng.normal(0, 20, (size, size))
            rgb = np.clip(np.stack([g, g[::-1], g.T], -1), 0, 255).astype(np.uint8)
            Image.fromarray(rgb).save(root / name / f"{i}.png")
    return root


def main(argv=None):
    p = argparse.ArgumentParser(description="transfer learning on an image folder")
    p.add_argument("--data", type=Path, help="folder of class subfolders (default: generated pictures)")
    p.add_argument("--backbone", default="resnet18", help="a name from cnnkit.models.list() (default resnet18)")
    p.add_argument("--weights", default="imagenet", help="'imagenet', a .pth/.safetensors path, or 'none'")
    p.add_argument("--size", type=int, default=64, help="image side the folder is resized to when loading")
    p.add_argument("--head-epochs", type=int, default=2)
    p.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs after the head")
    p.add_argument("--blocks", default="1", help="blocks to unfreeze for fine-tuning: a number or 'all'")
    p.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "transfer_example.cnnkit")
    args = p.parse_args(argv)

    data = args.data or _demo_folder(Path(tempfile.mkdtemp()) / "pictures")
    train, val = image_dataset_from_directory(data, image_size=(args.size, args.size), validation_split=0.25,
                                              subset="both", seed=0, verbose=False)
    weights = None if args.weights.lower() == "none" else args.weights
    blocks = args.blocks if args.blocks == "all" else int(args.blocks)
    try:
        model = one_call(train, val, args.backbone, weights, args.size, args.head_epochs, args.epochs, blocks)
    except WeightsUnavailableError as err:
        print(f"\n{err}\n\nGoing on from random weights (what --weights none does).\n")
        model = one_call(train, val, args.backbone, None, args.size, args.head_epochs, args.epochs, blocks)

    loss, acc = model.evaluate(val, verbose=0)
    print(f"held-out accuracy {acc:.3f} (loss {loss:.3f}) on {len(val)} images")
    model.save(args.out)
    again = cnnkit.load_model(args.out)
    same = np.array_equal(again.predict(val), model.predict(val))
    print(f"saved to {args.out}; reloaded model predicts identically: {same}")


if __name__ == "__main__":
    main()
