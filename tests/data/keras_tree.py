"""The small class-folder tree the Keras golden values were recorded on.

``build_keras_tree(root)`` writes the same files every time (PNG is lossless, so the
decoded pixels do not depend on the Pillow version): 3 classes of 20, 17 and 23 images of
mixed sizes, grey and RGBA PNGs among the RGB ones, a nested sub-folder, an upper-case
extension and a file Keras does not list. ``scripts/keras_golden/record_data.py`` (real
Keras) and the tests under ``tests/data/`` both build it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = {"cat": 20, "dog": 17, "fish": 23}


def _pixels(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth gradients plus noise: a resize shows in every pixel, not only at edges."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([255 * yy / max(h - 1, 1), 255 * xx / max(w - 1, 1),
                     127 + 120 * np.sin((xx + 2 * yy) / 3.0)], axis=-1)
    noise = rng.normal(0, 25, size=(h, w, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def build_keras_tree(root: str | Path) -> Path:
    root = Path(root)
    rng = np.random.default_rng(2024)
    for c, (name, count) in enumerate(CLASSES.items()):
        for i in range(count):
            h, w = (int(v) for v in rng.integers(6, 49, size=2))
            arr = _pixels(rng, h, w)
            sub = "sub/" if name == "dog" and i % 5 == 0 else ""
            ext = ".PNG" if i == 3 else ".png"
            path = root / name / f"{sub}{name}_{i:02d}{ext}"
            path.parent.mkdir(parents=True, exist_ok=True)
            kind = i % 7
            if kind == 5:
                img = Image.fromarray(arr[..., 1], "L")
            elif kind == 6:
                alpha = rng.integers(0, 256, size=(h, w, 1), dtype=np.uint8)
                img = Image.fromarray(np.concatenate([arr, alpha], axis=-1), "RGBA")
            else:
                img = Image.fromarray(arr, "RGB")
            img.save(path, format="PNG")
    (root / "cat" / "notes.txt").write_text("not an image\n")
    return root
