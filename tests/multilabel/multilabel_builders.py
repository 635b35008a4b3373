"""Tiny separable multi-label data: 16x16 images whose labels are the quadrants lit up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

QUADRANTS = ["top_left", "top_right", "bottom_left", "bottom_right"]


def quadrant_images(n: int = 96, seed: int = 0, size: int = 16):
    """(N x size x size x 3 uint8, N x 4 multi-hot): each quadrant lit with probability 1/2."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 4)) < 0.5).astype(np.float32)
    x = rng.integers(0, 50, size=(n, size, size, 3), dtype=np.uint8)
    h = size // 2
    for i in range(n):
        for q in np.nonzero(y[i])[0]:
            r, c = divmod(int(q), 2)
            x[i, r * h:(r + 1) * h, c * h:(c + 1) * h] += 180
    return x, y


def write_csv_dataset(root: Path, n: int = 96, seed: int = 0, header: bool = True,
                      delimiter: str = " ") -> Path:
    """root/images/<i>.png and root/labels.csv (filename,labels); returns the CSV."""
    x, y = quadrant_images(n, seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    lines = ["filename,labels"] if header else []
    for i in range(n):
        Image.fromarray(x[i]).save(root / "images" / f"{i:03d}.png")
        labels = delimiter.join(QUADRANTS[q] for q in np.nonzero(y[i])[0])
        lines.append(f"images/{i:03d}.png,{labels}")
    csv = root / "labels.csv"
    csv.write_text("\n".join(lines) + "\n")
    return csv
