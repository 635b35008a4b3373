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

A second table (``--policies``, on by default) times the per-image policies and the batch
mixers, each against torchvision.v2 on the same images:

- RandAugment(2, 9) and TrivialAugmentWide: cnnkit's batched version (an op and magnitude
  per image, ``cnnkit.data.randaugment``) vs torchvision.v2 given the whole batch (fast,
  but ONE op for all the images of a call) vs torchvision.v2 per image (per-image
  randomness, a Python loop);
- random erasing (p=0.25): cnnkit batched vs ``v2.RandomErasing`` per image;
- MixUp / CutMix: cnnkit's ``Mixing`` vs ``v2.MixUp`` / ``v2.CutMix`` on the batch.

Prints images/s (median of --repeats rounds, the four runs interleaved in each round so a
busy machine slows them alike) and the ratios, cnnkit's defaults against
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


def cnnkit_runner(images: torch.Tensor, batch: int, device: str, **options):
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

    return run, len(data)


def torchvision_tensor_runner(images: torch.Tensor):
    from torchvision.transforms import v2

    tf = v2.Compose([v2.RandomHorizontalFlip(), v2.RandomAffine(degrees=15, translate=(0.1, 0.1))])

    def run():
        for img in images:
            tf(img)

    return run, len(images)


def torchvision_pil_runner(images: torch.Tensor):
    from PIL import Image
    from torchvision import transforms

    tf = transforms.Compose([transforms.RandomHorizontalFlip(),
                             transforms.RandomAffine(degrees=15, translate=(0.1, 0.1))])
    pils = [Image.fromarray(img.permute(1, 2, 0).numpy()) for img in images]

    def run():
        for img in pils:
            tf(img)

    return run, len(pils)


def batched_runner(images: torch.Tensor, batch: int, fn):
    """``fn(x float N×C×H×W, generator)`` over float batches of ``images``."""
    gen = torch.Generator().manual_seed(0)

    def run():
        for i in range(0, len(images), batch):
            fn(images[i:i + batch].float().div_(255.0), gen)

    return run, len(images)


def tv_batch_runner(images: torch.Tensor, batch: int, tf, labels: bool = False):
    """A torchvision.v2 transform called on whole uint8 batches (with labels: a mixer)."""
    y = torch.arange(len(images)) % 10

    def run():
        for i in range(0, len(images), batch):
            x = images[i:i + batch]
            tf(x.float().div_(255.0), y[i:i + batch]) if labels else tf(x)

    return run, len(images)


def tv_per_image_runner(images: torch.Tensor, tf, as_float: bool = False):
    def run():
        for img in images:
            tf(img.float().div_(255.0) if as_float else img)

    return run, len(images)


def policy_rates(images: torch.Tensor, few: torch.Tensor, batch: int, repeats: int) -> dict:
    from torchvision.transforms import v2

    from cnnkit.data import augment_ops as ops
    from cnnkit.data.mixing import Mixing
    from cnnkit.data.randaugment import RandAugment, TrivialAugment
    y = torch.arange(len(images)) % 10
    mixup, cutmix = Mixing(mixup_alpha=0.2), Mixing(cutmix_alpha=1.0)  # one lam per batch, as v2
    return measure({
        "randaugment ours": batched_runner(images, batch, RandAugment(2, 9)),
        "randaugment tv batch": tv_batch_runner(images, batch, v2.RandAugment(2, 9)),
        "randaugment tv per image": tv_per_image_runner(few, v2.RandAugment(2, 9)),
        "trivialaugment ours": batched_runner(images, batch, TrivialAugment()),
        "trivialaugment tv batch": tv_batch_runner(images, batch, v2.TrivialAugmentWide()),
        "trivialaugment tv per image": tv_per_image_runner(few, v2.TrivialAugmentWide()),
        "erasing ours": batched_runner(images, batch, lambda x, g: ops.random_erasing(x, g, 0.25)),
        "erasing tv per image": tv_per_image_runner(few, v2.RandomErasing(p=0.25), as_float=True),
        "mixup ours": batched_runner(images, batch, lambda x, g: mixup.mix(x, y[:len(x)], g, 10)),
        "mixup tv batch": tv_batch_runner(images, batch, v2.MixUp(alpha=0.2, num_classes=10),
                                          True),
        "cutmix ours": batched_runner(images, batch, lambda x, g: cutmix.mix(x, y[:len(x)], g, 10)),
        "cutmix tv batch": tv_batch_runner(images, batch, v2.CutMix(alpha=1.0, num_classes=10),
                                           True),
    }, repeats)


def measure(runners: dict, repeats: int) -> dict[str, float]:
    """Images/s of each runner: the median of ``repeats`` rounds, the runners interleaved
    within each round so that a busy machine slows them alike."""
    for run, _ in runners.values():
        run()  # warm-up
    times = {name: [] for name in runners}
    for _ in range(repeats):
        for name, (run, _) in runners.items():
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    return {name: runners[name][1] / statistics.median(t) for name, t in times.items()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=20480, help="images for the batched runs")
    p.add_argument("--per-image", type=int, default=2048, help="images for per-image runs")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--cuda", action="store_true", help="also time cnnkit on the GPU")
    p.add_argument("--no-policies", dest="policies", action="store_false",
                   help="skip the RandAugment / TrivialAugment / erasing / mixing table")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (args.images, 3, 32, 32), dtype=np.uint8))
    few = images[:args.per_image].contiguous()

    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    print(f"augmentation throughput, flip + shift 0.1 + rotate 15°, 3×32×32 images, "
          f"{args.threads} CPU threads ({os.cpu_count()} cores seen), torch "
          f"{torch.__version__}, {platform.processor() or platform.machine()}{load}")
    rates = measure({
        "ours": cnnkit_runner(images, args.batch, "cpu"),
        "ours_nearest": cnnkit_runner(images, args.batch, "cpu", interpolation="nearest",
                                      fill_mode="constant"),
        "tv_tensor": torchvision_tensor_runner(few),
        "tv_pil": torchvision_pil_runner(few),
    }, args.repeats)
    ours, tv_tensor, tv_pil = rates["ours"], rates["tv_tensor"], rates["tv_pil"]
    print(f"  cnnkit batched, bilinear + reflect:   {ours:>12,.0f} images/s  (batch {args.batch})")
    print(f"  cnnkit batched, nearest + zero fill:  {rates['ours_nearest']:>12,.0f} images/s  "
          "(torchvision's defaults)")
    print(f"  torchvision per image, uint8 tensors: {tv_tensor:>12,.0f} images/s")
    print(f"  torchvision per image, PIL images:    {tv_pil:>12,.0f} images/s")
    print(f"  ratio cnnkit / torchvision tensors:   {ours / tv_tensor:>12.1f}x")
    print(f"  ratio cnnkit / torchvision PIL:       {ours / tv_pil:>12.1f}x")
    if args.policies:
        print(f"per-image policies and batch mixers (batch {args.batch}; per-image rows on "
              f"{len(few)} images; 'tv batch' RandAugment/TrivialAugment draw one op per call)")
        for name, rate in policy_rates(images, few, args.batch, args.repeats).items():
            print(f"  {name:<30} {rate:>12,.0f} images/s")
    if args.cuda and torch.cuda.is_available():
        gpu = measure({"gpu": cnnkit_runner(images, args.batch, "cuda")}, args.repeats)["gpu"]
        print(f"  cnnkit batched on {torch.cuda.get_device_name()}: {gpu:>12,.0f} images/s "
              f"({gpu / tv_tensor:.0f}x torchvision tensors on the CPU)")

if __name__ == "__main__":
    main()
