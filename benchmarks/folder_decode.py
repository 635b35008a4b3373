"""Decoding an image folder: the old thread pool against worker processes, in one run.

What ``cnnkit train --data FOLDER`` pays on its first run over a folder (later runs read the
decoded-array cache): CIFAR-10's 50,000 JPEGs from ``$CNNKIT_DATASETS/cifar10-jpeg/train``,
decoded without the cache (the files in the page cache: a warm-up reads them first).
Contenders: ``threads(N)`` is the pool used before (``min(16, 4 x CPUs)`` threads),
``threads(1)`` one thread, ``processes`` the default now (``cnnkit.data.decode_pool``).
``--loader keras`` times the Keras-contract loader instead (``keras.utils.
image_dataset_from_directory``'s decoding: Pillow, then TensorFlow's resize arithmetic in
torch, to ``--size``; its worker processes first set torch to one thread).

    python benchmarks/folder_decode.py [--rounds 2] [--limit 20000] [--loader keras --size 64]
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402


def decode_with(entries, workers: int, processes: bool, loader: str = "folder",
                size: int = 64) -> float:
    """Seconds to decode ``entries`` with this many workers (processes or threads)."""
    from cnnkit.data import decode_pool, folder, keras_decode
    parts = decode_pool.chunked(enumerate(e.path for e in entries), workers)
    t0 = time.perf_counter()
    if loader == "keras":  # into shared memory, as keras_decode._decode does
        options = dict(color_mode="rgb", image_size=(size, size), interpolation="bilinear",
                       crop_to_aspect_ratio=False, pad_to_aspect_ratio=False)
        with decode_pool.shared_output((len(entries), 3, size, size)) as (key, _):
            fn = keras_decode._rows_decoder(options, key)
            n = sum(len(d) for d, _, _ in decode_pool.imap_chunks(
                fn, parts, workers, processes, decode_pool.torch_in_child))
    else:
        kwargs = dict(color_mode="rgb", size=None, interpolation="bilinear",
                      crop_to_aspect_ratio=False, pad_to_aspect_ratio=False)
        fn = functools.partial(folder._decode_rows, kwargs=kwargs)
        n = sum(len(d) for d, _, _ in decode_pool.imap_chunks(fn, parts, workers, processes))
    assert n == len(entries)
    return time.perf_counter() - t0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="decode only the first N files")
    ap.add_argument("--loader", choices=("folder", "keras"), default="folder",
                    help="cnnkit's folder loader (native size) or the Keras-contract one")
    ap.add_argument("--size", type=int, default=64, help="--loader keras: resize to size×size")
    args = ap.parse_args(argv)
    root = _common.DATASETS / "cifar10-jpeg" / "train"
    if not root.is_dir():
        sys.exit(f"no CIFAR-10 JPEG folder at {root}; set CNNKIT_DATASETS")
    from cnnkit.data import decode_pool
    from cnnkit.data.layout import scan_folder
    layout = scan_folder(root)
    entries = next(iter(layout.files.values()))  # the one split: every class folder's files
    entries = entries[:args.limit] if args.limit else entries
    cpus = decode_pool.available_cpus()
    old = min(16, 4 * (os.cpu_count() or 1))
    contenders = {f"threads({old}) (before)": (old, False), "threads(1)": (1, False),
                  f"processes({cpus}) (now)": (cpus, True)}
    run = functools.partial(decode_with, loader=args.loader, size=args.size)
    run(entries, cpus, True)  # warm-up: the files into the page cache
    times = {name: [] for name in contenders}
    for _ in range(args.rounds):  # interleaved rounds, the median of each
        for name, (workers, processes) in contenders.items():
            times[name].append(run(entries, workers, processes))
    what = f"resized to {args.size}×{args.size} (keras)" if args.loader == "keras" else "native size"
    print(f"{len(entries)} files, {what}, {cpus} CPUs ({platform.processor() or platform.machine()}, "
          f"load {os.getloadavg()[0]:.2f})")
    median = {name: sorted(ts)[len(ts) // 2] for name, ts in times.items()}
    base = median[f"processes({cpus}) (now)"]
    for name, med in median.items():
        print(f"  {name:24s} {med:6.2f} s  {len(entries) / med:8.0f} files/s  "
              f"{med / base:5.2f}x the processes' time")


if __name__ == "__main__":
    main()
