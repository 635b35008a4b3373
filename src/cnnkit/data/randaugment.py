"""RandAugment and TrivialAugment on whole batches, with an op and a magnitude per image.

torchvision's ``v2.RandAugment`` given a batch tensor draws ONE op for the whole batch;
per-image randomness there means a Python loop over the images. Here each image draws its
own op (and, for TrivialAugment, its own magnitude bin and sign); the images that drew the
same op go through it together, so one batch costs at most one call per op:

- the five geometric ops (shear, translate, rotate) are one ``grid_sample`` pass for all the
  images that drew any of them (``augment_ops.apply_affine``, nearest, filled with 0, as
  torchvision's defaults);
- brightness / colour / contrast / sharpness are blends with per-image factors;
- posterize / solarize take per-image bits / thresholds; equalize and autocontrast are
  torchvision's own (already per image on a batch).

The op tables and magnitude bins are torchvision's (``_AUGMENTATION_SPACE`` of
``RandAugment`` and ``TrivialAugmentWide``); ``benchmarks/augment_throughput.py`` compares
the speed with torchvision's per-image loop. Images are float N×C×H×W in [0, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import augment_ops as ops

__all__ = ["RandAugment", "TrivialAugment", "OPS"]

OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness",
       "Color", "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize")
_SIGNED = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
           "Contrast", "Sharpness"}
_GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")


def _space(wide: bool, bins: int, height: int, width: int) -> dict:
    """op -> magnitudes per bin (torchvision's tables), None for ops without one."""
    lin = torch.linspace
    if wide:  # TrivialAugmentWide
        shear, tx, ty, rot, col, post = (lin(0, .99, bins), lin(0, 32., bins), lin(0, 32., bins),
                                         lin(0, 135., bins), lin(0, .99, bins), 6)
    else:     # RandAugment
        shear, tx, ty, rot, col, post = (lin(0, .3, bins), lin(0, 150 / 331 * width, bins),
                                         lin(0, 150 / 331 * height, bins), lin(0, 30., bins),
                                         lin(0, .9, bins), 4)
    bits = (8 - (torch.arange(bins) / ((bins - 1) / post))).round()
    return {"Identity": None, "ShearX": shear, "ShearY": shear, "TranslateX": tx,
            "TranslateY": ty, "Rotate": rot, "Brightness": col, "Color": col, "Contrast": col,
            "Sharpness": col, "Posterize": bits, "Solarize": lin(1.0, 0.0, bins),
            "AutoContrast": None, "Equalize": None}


def _gray(x: torch.Tensor) -> torch.Tensor:
    """N×1×H×W luminance (ITU-R 601-2, torchvision's weights); grey images stay as they are."""
    if x.shape[1] == 1:
        return x
    return (0.2989 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def _blend(a: torch.Tensor, b: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``b + factor (a - b)`` per image, clipped to [0, 1] (PIL's ImageEnhance)."""
    return (b + factor.view(-1, 1, 1, 1) * (a - b)).clamp(0, 1)


def _sharpen_base(x: torch.Tensor) -> torch.Tensor:
    """PIL's SMOOTH filter inside, the border pixels kept (torchvision's adjust_sharpness)."""
    c = x.shape[1]
    kernel = torch.ones(3, 3, device=x.device, dtype=x.dtype)
    kernel[1, 1] = 5.0
    kernel = (kernel / kernel.sum()).expand(c, 1, 3, 3)
    inner = F.conv2d(x, kernel, groups=c)
    out = x.clone()
    out[..., 1:-1, 1:-1] = inner
    return out


def _color_op(name: str, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """A non-geometric op on images ``x`` with per-image magnitudes ``m`` (N,)."""
    from torchvision.transforms.v2 import functional as TF
    if name == "Brightness":
        return _blend(x, torch.zeros_like(x), 1 + m)
    if name == "Color":
        return _blend(x, _gray(x).expand_as(x), 1 + m)
    if name == "Contrast":
        return _blend(x, _gray(x).mean(dim=(1, 2, 3), keepdim=True).expand_as(x), 1 + m)
    if name == "Sharpness":
        return _blend(x, _sharpen_base(x), 1 + m)
    if name == "Posterize":  # keep the top `bits` bits of the 8-bit value
        step = (2.0 ** (8 - m)).view(-1, 1, 1, 1)
        return (torch.floor((x * 255).round() / step) * step) / 255
    if name == "Solarize":
        return torch.where(x >= m.view(-1, 1, 1, 1), 1 - x, x)
    if name == "AutoContrast":
        return TF.autocontrast(x)
    if name == "Equalize":
        return TF.equalize(x)
    return x


def _geometric(x: torch.Tensor, op_idx: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Shear / translate / rotate, each image by its own op and magnitude, in one pass.
    Shears are ``x_in = x_out + m y_out`` (ShearX) and ``y_in = y_out + m x_out`` (ShearY)."""
    n, _, h, w = x.shape

    def where(name):  # this op's magnitude for the images that drew it, else 0
        return torch.where(op_idx == OPS.index(name), m, torch.zeros_like(m))
    theta = ops.affine_theta(h, w, rotation=where("Rotate"),
                             shift_x=where("TranslateX").round(),
                             shift_y=where("TranslateY").round())
    theta[:, 0, 1] += where("ShearX") * (h / w)   # normalised coordinates: x by W/2, y by H/2
    theta[:, 1, 0] += where("ShearY") * (w / h)
    return ops.apply_affine(x, theta, fill_mode="constant", fill_value=0.0,
                            interpolation="nearest")


def _tables(wide: bool, bins: int, height: int, width: int) -> torch.Tensor:
    """14 × bins magnitudes (0 for ops without one)."""
    space = _space(wide, bins, height, width)
    return torch.stack([space[k].float() if space[k] is not None else torch.zeros(bins)
                        for k in OPS])


_SIGNED_MASK = torch.tensor([k in _SIGNED for k in OPS])
_GEOMETRIC_MASK = torch.tensor([k in _GEOMETRIC for k in OPS])


class _BatchedPolicy:
    """Shared by RandAugment and TrivialAugment: ``(x, generator) -> x`` per-image ops."""

    wide = False

    def _draw(self, n: int, generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(op index (N,), magnitude bin (N,)) for one layer of ops."""
        raise NotImplementedError

    def _layer(self, x: torch.Tensor, generator) -> torch.Tensor:
        n, _, h, w = x.shape
        op_idx, bins = self._draw(n, generator)
        sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
        mags = _tables(self.wide, self.num_magnitude_bins, h, w)[op_idx, bins]
        mags = torch.where(_SIGNED_MASK[op_idx], mags * sign, mags)           # (N,)
        out = x.clone()
        geo = _GEOMETRIC_MASK[op_idx].nonzero().flatten()
        if len(geo):
            d = geo.to(x.device)
            out[d] = _geometric(x[d], op_idx[geo], mags[geo])
        for k, name in enumerate(OPS):
            if name in _GEOMETRIC or name == "Identity":
                continue
            idx = (op_idx == k).nonzero().flatten()
            if len(idx):
                d = idx.to(x.device)
                out[d] = _color_op(name, x[d], mags[idx].to(x.device, x.dtype))
        return out

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for _ in range(getattr(self, "num_ops", 1)):
            x = self._layer(x, generator)
        return x


class RandAugment(_BatchedPolicy):
    """RandAugment (Cubuk et al. 2020): ``num_ops`` ops per image, each uniform over the 14,
    at the fixed ``magnitude`` (bin of ``num_magnitude_bins``) with a random sign."""

    def __init__(self, num_ops: int = 2, magnitude: int = 9, num_magnitude_bins: int = 31):
        if num_ops < 1 or not 0 <= magnitude < num_magnitude_bins:
            raise ValueError(f"randaugment needs num_ops >= 1 and 0 <= magnitude < "
                             f"{num_magnitude_bins}, got {num_ops}:{magnitude}")
        self.num_ops, self.magnitude = int(num_ops), int(magnitude)
        self.num_magnitude_bins = int(num_magnitude_bins)

    def _draw(self, n, generator):
        return (torch.randint(0, len(OPS), (n,), generator=generator),
                torch.full((n,), self.magnitude, dtype=torch.long))


class TrivialAugment(_BatchedPolicy):
    """TrivialAugment Wide (Müller & Hutter 2021): one op per image, uniform over the 14,
    at a magnitude bin drawn uniformly per image."""

    wide = True

    def __init__(self, num_magnitude_bins: int = 31):
        self.num_magnitude_bins = int(num_magnitude_bins)

    def _draw(self, n, generator):
        return (torch.randint(0, len(OPS), (n,), generator=generator),
                torch.randint(0, self.num_magnitude_bins, (n,), generator=generator))
