"""Augmentation throughput: cnnkit's batched ops vs torchvision's per-image transforms.

The pipeline is the tutorials' one: horizontal flip + shift (10 %) + rotation (±15°) on
CIFAR-sized images (3×32×32), measured in the same run:

- cnnkit: ``Augment(flip='horizontal', shift=0.1, rotate=15)`` on whole uint8 batches
  (converted to float, then flip + shift + rotation in one grid_sample pass), with its
  defaults (bilinear, reflect fill) and with torchvision's (nearest, zero fill).
- torchvision, per image, on uint8 tensors: ``v2.RandomHorizontalFlip()`` +
  ``v2.RandomAffine(degrees=15, translate=(0.1, 0.1))`` (nearest, zero fill: less work
  per pixel than ours).
- torchvision, per image, on PIL images (the classic Dataset + transforms path).

Prints images/s (median of --repeats runs) and the ratios, cnnkit's defaults against
each torchvision path. Use --threads to match the machine (default 2, the development
machine's cores); on a machine whose cores are busy with other work, torch's intra-op
threads wait on each other and --threads 1 gives the steadier figure.

    python benchmarks/augment_throughput.py [--images 20480] [--batch 512] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch


def _median_rate(fn, n_images: int, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n_images / statistics.median(times)


def bench_cnnkit(images: torch.Tensor, batch: int, repeats: int, device: str,
                 **options) -> float:
    from cnnkit.data.augment import Augment

    aug = Augment(flip="horizontal", shift=0.1, rotate=15, **options)
    data = images.to(device)
    gen = torch.Generator(device=device).manual_seed(0)

    def run():
        for i in range(0, len(data), batch):
            x = data[i:i + batch].float().div_(255.0)
            x = aug(x, gen)
        if device == "cuda":
            torch.cuda.synchronize()

    return _median_rate(run, len(data), repeats)


def bench_torchvision_tensor(images: torch.Tensor, repeats: int) -> float:
    from torchvision.transforms import v2

    tf = v2.Compose([v2.RandomHorizontalFlip(), v2.RandomAffine(degrees=15, translate=(0.1, 0.1))])

    def run():
        for img in images:
            tf(img)

    return _median_rate(run, len(images), repeats)


def bench_torchvision_pil(images: torch.Tensor, repeats: int) -> float:
    from PIL import Image
    from torchvision import transforms

    tf = transforms.Compose([transforms.RandomHorizontalFlip(),
                             transforms.RandomAffine(degrees=15, translate=(0.1, 0.1))])
    pils = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in images]

    def run():
        for img in pils:
            tf(img)

    return _median_rate(run, len(pils), repeats)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=20480, help="images for the batched runs")
    p.add_argument("--per-image", type=int, default=2048, help="images for per-image runs")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cuda", action="store_true", help="also time cnnkit on the GPU")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (args.images, 3, 32, 32), dtype=np.uint8))
    few = images[:args.per_image].contiguous()

    print(f"augmentation throughput, flip + shift 0.1 + rotate 15°, 3×32×32 images, "
          f"{args.threads} CPU threads ({os.cpu_count()} cores seen), torch "
          f"{torch.__version__}, {platform.processor() or platform.machine()}")
    ours = bench_cnnkit(images, args.batch, args.repeats, "cpu")
    ours_nearest = bench_cnnkit(images, args.batch, args.repeats, "cpu",
                                interpolation="nearest", fill_mode="constant")
    tv_tensor = bench_torchvision_tensor(few, args.repeats)
    tv_pil = bench_torchvision_pil(few, args.repeats)
    print(f"  cnnkit batched, bilinear + reflect:   {ours:>12,.0f} images/s  (batch {args.batch})")
    print(f"  cnnkit batched, nearest + zero fill:  {ours_nearest:>12,.0f} images/s  "
          "(torchvision's defaults)")
    print(f"  torchvision per image, uint8 tensors: {tv_tensor:>12,.0f} images/s")
    print(f"  torchvision per image, PIL images:    {tv_pil:>12,.0f} images/s")
    print(f"  ratio cnnkit / torchvision tensors:   {ours / tv_tensor:>12.1f}x")
    print(f"  ratio cnnkit / torchvision PIL:       {ours / tv_pil:>12.1f}x")
    if args.cuda and torch.cuda.is_available():
        gpu = bench_cnnkit(images, args.batch, args.repeats, "cuda")
        print(f"  cnnkit batched on {torch.cuda.get_device_name()}: {gpu:>12,.0f} images/s "
              f"({gpu / tv_tensor:.0f}x torchvision tensors on the CPU)")


if __name__ == "__main__":
    main()
