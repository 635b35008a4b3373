"""Accuracy of the zoo's 'resnet-cifar' on CIFAR-10 held-out data, with its training time.

    python benchmarks/resnet_cifar10.py [--width 16] [--epochs 2] [--batch-size 256] [--lr 0.2]

Data: ``$CNNKIT_DATASETS/cifar10-jpeg/train/<class>/*.jpg`` (default ../shared/datasets beside the repository),
decoded once by ``cnnkit.datasets.image_dataset_from_directory`` (cached). Held out: the last
1,000 files of every class (10,000 images), never trained on. Recipe: SGD + Nesterov,
one-cycle learning rate, label smoothing 0.2, flips + 2-pixel random crops, batched.
Prints the held-out accuracy (plain and with flip test-time augmentation), the training
seconds (decoding excluded) and the machine's load beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from cnnkit.models import registry
from cnnkit.data.augment import Augment
from cnnkit.losses import SparseCategoricalCrossentropy
from cnnkit.optimizers import SGD

DATASETS = Path(os.environ.get("CNNKIT_DATASETS",
                               Path(__file__).resolve().parents[2] / "shared" / "datasets"))


def load_cifar10(holdout_per_class: int = 1000):
    from cnnkit.datasets import image_dataset_from_directory

    ds = image_dataset_from_directory(DATASETS / "cifar10-jpeg" / "train", shuffle=False, verbose=False)
    labels = ds.labels.numpy()
    val = np.zeros(len(labels), dtype=bool)
    for c in range(len(ds.class_names)):
        idx = np.flatnonzero(labels == c)
        val[idx[len(idx) - holdout_per_class:]] = True
    train = (ds.images[torch.from_numpy(~val)], ds.labels[torch.from_numpy(~val)])
    held = (ds.images[torch.from_numpy(val)], ds.labels[torch.from_numpy(val)])
    return train, held, ds.class_names


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.2, help="peak learning rate of the one-cycle schedule")
    p.add_argument("--train-size", type=int, default=0, help="use only this many training images (0: all)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    t0 = time.perf_counter()
    (x_tr, y_tr), (x_val, y_val), class_names = load_cifar10()
    decode_s = time.perf_counter() - t0
    if args.train_size:
        keep = torch.randperm(len(y_tr), generator=torch.Generator().manual_seed(args.seed))[:args.train_size]
        x_tr, y_tr = x_tr[keep], y_tr[keep]

    model = registry.create("resnet-cifar", width=args.width, class_names=class_names)
    model = model.to(memory_format=torch.channels_last)
    model.compile(optimizer=SGD(args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4),
                  loss=SparseCategoricalCrossentropy(from_logits=True, label_smoothing=0.2),
                  metrics=["accuracy"])
    steps = args.epochs * ((len(y_tr) + args.batch_size - 1) // args.batch_size)
    warm = max(1, int(0.2 * steps))
    # one cycle, piecewise linear: 0.1 -> 1 over the first 20% of steps, then down to 0.02 (x peak)
    sched = torch.optim.lr_scheduler.LambdaLR(
        model.optimizer, lambda i: 0.1 + 0.9 * i / warm if i < warm else
        max(0.02, 1 - 0.98 * (i - warm) / max(1, steps - warm)))
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    history = model.fit(x_tr, y_tr, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                        augment=Augment(flip="horizontal", crop=2), scheduler=sched, verbose=0)
    train_s = time.perf_counter() - t0
    load_after = os.getloadavg()[0]

    t0 = time.perf_counter()
    probs = model.predict(x_val, batch_size=1000)
    probs_flip = model.predict(x_val.flip(-1), batch_size=1000)
    eval_s = time.perf_counter() - t0
    y = y_val.numpy()
    acc = float((probs.argmax(1) == y).mean())
    acc_tta = float(((probs + probs_flip).argmax(1) == y).mean())
    result = {
        "model": "resnet-cifar", "width": args.width, "params": model.count_params(),
        "train_images": len(y_tr), "heldout_images": len(y), "epochs": args.epochs,
        "batch_size": args.batch_size, "peak_lr": args.lr,
        "heldout_accuracy": round(acc, 4), "heldout_accuracy_flip_tta": round(acc_tta, 4),
        "train_seconds": round(train_s, 1), "seconds_per_epoch": round(train_s / args.epochs, 1),
        "decode_seconds": round(decode_s, 1), "eval_seconds": round(eval_s, 1),
        "train_accuracy_last_epoch": round(history.history["accuracy"][-1], 4),
        "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "load_average_1min_before_after": [round(load_before, 2), round(load_after, 2)],
        "torch": torch.__version__,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
