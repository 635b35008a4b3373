"""Build a multi-label dataset from CIFAR-10: 2x2 mosaics of four 32x32 images (64x64),
labelled with the set of their classes.

    python scripts/make_cifar_mosaics.py OUT [--cifar DIR] [--train 8000] [--test 2000] [--seed 0]

writes OUT/images/train_00000.jpg ..., OUT/train.csv and OUT/test.csv (``filename,labels``,
labels separated by spaces, paths relative to OUT). The source images are split first, so
no CIFAR image appears in both a training and a test mosaic. Then:

    cnnkit train --data OUT/train.csv --test-data OUT/test.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_CIFAR = Path(__file__).resolve().parents[2] / "shared/datasets/cifar10-jpeg/train"


def _sources(cifar: Path) -> list[tuple[Path, str]]:
    classes = sorted(d.name for d in cifar.iterdir() if d.is_dir())
    if not classes:
        raise SystemExit(f"{cifar}: no class folders (expected <class>/*.jpg)")
    return [(f, c) for c in classes for f in sorted((cifar / c).glob("*.jpg"))]


def _mosaics(files, n: int, rng, out: Path, prefix: str) -> list[str]:
    lines = []
    for i in range(n):
        pick = rng.choice(len(files), size=4, replace=False)
        tile = Image.new("RGB", (64, 64))
        for k, j in enumerate(pick):
            with Image.open(files[j][0]) as im:
                tile.paste(im.convert("RGB").resize((32, 32)), ((k % 2) * 32, (k // 2) * 32))
        name = f"images/{prefix}_{i:05d}.jpg"
        tile.save(out / name, quality=95)
        lines.append(f"{name},{' '.join(sorted({files[j][1] for j in pick}))}")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--cifar", type=Path, default=DEFAULT_CIFAR)
    ap.add_argument("--train", type=int, default=8000, help="training mosaics")
    ap.add_argument("--test", type=int, default=2000, help="held-out mosaics")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    files = _sources(args.cifar)
    order = rng.permutation(len(files))
    cut = int(len(files) * args.train / (args.train + args.test))  # source images split first
    train_files = [files[i] for i in order[:cut]]
    test_files = [files[i] for i in order[cut:]]
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    for name, part, n in (("train", train_files, args.train), ("test", test_files, args.test)):
        lines = _mosaics(part, n, rng, args.out, name)
        (args.out / f"{name}.csv").write_text("filename,labels\n" + "\n".join(lines) + "\n")
        print(f"{args.out / f'{name}.csv'}: {n} mosaics from {len(part)} CIFAR-10 images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
