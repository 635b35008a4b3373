"""Cut the small MNIST sample shipped inside the package from the canonical training files.

    python scripts/make_bundled_mnist.py ../shared/datasets/mnist

Writes src/cnnkit/data/bundled/mnist_small.npz: 6,000 training and 1,000 test digits
(uint8, N×28×28×1), balanced per class, train taken from the first 50,000 images and test
from the last 10,000 so the two never share an image.
"""

import gzip
import sys
from pathlib import Path

import numpy as np


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def balanced(labels: np.ndarray, per_class: int, rng) -> np.ndarray:
    picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)]
    return np.sort(np.concatenate(picks))


def main(src: str) -> None:
    src = Path(src)
    x = read_idx(src / "train-images-idx3-ubyte.gz")
    y = read_idx(src / "train-labels-idx1-ubyte.gz").astype(np.int64)
    rng = np.random.default_rng(0)
    train_idx = balanced(y[:50000], 600, rng)
    test_idx = 50000 + balanced(y[50000:], 100, rng)
    out = Path(__file__).resolve().parents[1] / "src/cnnkit/data/bundled/mnist_small.npz"
    np.savez_compressed(out, x_train=x[train_idx][..., None], y_train=y[train_idx].astype(np.uint8),
                        x_test=x[test_idx][..., None], y_test=y[test_idx].astype(np.uint8))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets/mnist")
