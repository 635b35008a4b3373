"""Batched augmentation ops on float N×C×H×W tensors: one random draw per image, no
per-image Python.

Every op takes ``(x, generator, ...)``; random numbers come from ``generator`` (a
``torch.Generator`` on any device; ``None`` uses torch's global generator) and are moved
to ``x.device``, so the same seed gives the same batch on CPU and GPU draws alike.

Conventions (Keras's): positive rotation is counter-clockwise as the image is displayed;
a positive shift moves the content right/down; a zoom factor above 1 samples a larger area
(zooms out). ``fill_mode`` is 'constant' (``fill_value``), 'nearest' (edge pixel),
'reflect' (about the edge: d c b a | a b c d | d c b a) or 'wrap'.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["uniform", "random_flip", "affine_theta", "affine_grid", "apply_affine", "random_affine",
           "random_crop", "cutout", "random_erasing", "random_brightness",
           "random_brightness_scale", "random_contrast", "random_channel_shift",
           "FILL_MODES"]

FILL_MODES = ("constant", "nearest", "reflect", "wrap")


def uniform(n: int, lo: float, hi: float, generator: torch.Generator | None,
            device) -> torch.Tensor:
    """``n`` floats uniform in [lo, hi) from ``generator``, on ``device``."""
    gdev = generator.device if generator is not None else device
    r = torch.rand(n, generator=generator, device=gdev)
    return (lo + (hi - lo) * r).to(device)


def _coin(n: int, p: float, generator, device) -> torch.Tensor:
    return uniform(n, 0.0, 1.0, generator, device) < p


def _randint(n: int, low: int, high: int, generator, device) -> torch.Tensor:
    """Integers in [low, high] inclusive."""
    gdev = generator.device if generator is not None else device
    return torch.randint(low, high + 1, (n,), generator=generator, device=gdev).to(device)


def random_flip(x: torch.Tensor, generator=None, horizontal: bool = True,
                vertical: bool = False, p: float = 0.5) -> torch.Tensor:
    """Flip each image left-right (and/or up-down) with probability ``p``, independently."""
    n = x.shape[0]
    if horizontal:
        mask = _coin(n, p, generator, x.device).view(n, 1, 1, 1)
        x = torch.where(mask, x.flip(-1), x)
    if vertical:
        mask = _coin(n, p, generator, x.device).view(n, 1, 1, 1)
        x = torch.where(mask, x.flip(-2), x)
    return x


def affine_theta(height: int, width: int, rotation=None, shift_x=None, shift_y=None,
                 zoom_x=None, zoom_y=None, shear=None) -> torch.Tensor:
    """Per-image parameters (tensors of shape (N,), or None) -> N×2×3 ``affine_grid`` theta.

    rotation, shear: degrees; shift_x/shift_y: pixels (content moves right/down);
    zoom_x/zoom_y: sampling scale (> 1 zooms out; -1 mirrors that axis). The matrix maps output pixel
    positions to input positions (centred, in pixels), then is rescaled to the
    normalised [-1, 1] coordinates ``affine_grid`` uses with ``align_corners=False``.
    """
    params = [t for t in (rotation, shift_x, shift_y, zoom_x, zoom_y, shear) if t is not None]
    n, device = params[0].shape[0], params[0].device
    one = torch.ones(n, device=device)
    zero = torch.zeros(n, device=device)
    # sampling matrix M = R(-angle) @ Shear @ Zoom, in (x right, y down) pixel coordinates
    a = torch.deg2rad(rotation) if rotation is not None else zero
    c, s = torch.cos(a), torch.sin(a)
    m = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)   # N×2×2
    if shear is not None:
        sh = torch.deg2rad(shear)
        shear_m = torch.stack([torch.stack([torch.cos(sh), zero], -1),
                               torch.stack([-torch.sin(sh), one], -1)], -2)
        m = m @ shear_m
    if zoom_x is not None or zoom_y is not None:
        zx = zoom_x if zoom_x is not None else one
        zy = zoom_y if zoom_y is not None else one
        m = m * torch.stack([zx, zy], -1).unsqueeze(-2)  # scales the columns: M @ diag(z)
    tx = -shift_x if shift_x is not None else zero
    ty = -shift_y if shift_y is not None else zero
    # pixels -> normalised: theta = S^-1 M S, t / S, with S = diag(W/2, H/2)
    aspect = height / width
    theta = torch.stack([
        torch.stack([m[:, 0, 0], m[:, 0, 1] * aspect, tx * 2.0 / width], -1),
        torch.stack([m[:, 1, 0] / aspect, m[:, 1, 1], ty * 2.0 / height], -1)], -2)
    return theta.to(torch.float32)


def affine_grid(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``F.affine_grid(theta, ..., align_corners=False)`` by broadcasting: N×H×W×2.

    Four multiply-adds per pixel instead of a batched matmul against a base grid; about
    4× faster on the CPU for small images and equal to 1e-6.
    """
    n = theta.shape[0]
    xs = (torch.arange(width, device=theta.device, dtype=theta.dtype) * 2 + 1) / width - 1
    ys = (torch.arange(height, device=theta.device, dtype=theta.dtype) * 2 + 1) / height - 1
    t = theta.reshape(n, 6, 1, 1)
    grid = torch.empty(n, height, width, 2, device=theta.device, dtype=theta.dtype)
    torch.add(t[:, 0] * xs, t[:, 1] * ys[:, None], out=grid[..., 0])
    grid[..., 0] += t[:, 2]
    torch.add(t[:, 3] * xs, t[:, 4] * ys[:, None], out=grid[..., 1])
    grid[..., 1] += t[:, 5]
    return grid


def apply_affine(x: torch.Tensor, theta: torch.Tensor, fill_mode: str = "reflect",
                 fill_value: float = 0.0, interpolation: str = "bilinear") -> torch.Tensor:
    """Resample every image of ``x`` through its own ``theta`` in one ``grid_sample`` call."""
    if fill_mode not in FILL_MODES:
        raise ValueError(f"fill_mode must be one of {FILL_MODES}, got {fill_mode!r}")
    if interpolation not in ("bilinear", "nearest"):
        raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
    n, c, h, w = x.shape
    grid = affine_grid(theta.to(device=x.device, dtype=x.dtype), h, w)  # N×H×W×2
    padding = {"constant": "zeros", "nearest": "border", "reflect": "reflection",
               "wrap": "border"}[fill_mode]
    if fill_mode == "wrap":
        grid = torch.remainder(grid + 1.0, 2.0) - 1.0
    if fill_mode == "constant" and fill_value:
        return F.grid_sample(x - fill_value, grid, mode=interpolation, padding_mode="zeros",
                             align_corners=False) + fill_value
    return F.grid_sample(x, grid, mode=interpolation, padding_mode=padding,
                         align_corners=False)


def _span(r) -> tuple[float, float]:
    """A symmetric amount ``a`` -> (-a, a); a pair stays as it is."""
    if isinstance(r, (tuple, list)):
        return float(r[0]), float(r[1])
    return -float(r), float(r)


def random_affine(x: torch.Tensor, generator=None, rotation=0.0, shift=0.0, zoom=0.0,
                  shear=0.0, isotropic_zoom: bool = True, integer_pixel_shift: bool = True,
                  fill_mode: str = "reflect", fill_value: float = 0.0,
                  interpolation: str = "bilinear", hflip: bool = False,
                  vflip: bool = False) -> torch.Tensor:
    """Random rotation + shift + zoom + shear (+ flips), combined into one sampling pass.

    rotation: degrees, ``r`` -> uniform(-r, r), or a (lo, hi) pair.
    shift: fraction of the side if < 1, pixels if >= 1; a number for both axes or
        (height, width). Pixel shifts are whole pixels when ``integer_pixel_shift``.
    zoom: ``z`` -> scale uniform(1 - z, 1 + z), or a (lo, hi) pair of scales.
    shear: degrees, like rotation.
    hflip / vflip: also flip each image with probability 1/2, folded into the same pass
        (a flip is a zoom factor of -1, exact at pixel centres).
    """
    n, _, h, w = x.shape
    dev = x.device
    params = {}
    rot = _span(rotation)
    if rot != (0.0, 0.0):
        params["rotation"] = uniform(n, *rot, generator, dev)
    sh_h, sh_w = shift if isinstance(shift, (tuple, list)) else (shift, shift)
    for key, amount, side in (("shift_y", sh_h, h), ("shift_x", sh_w, w)):
        amount = float(amount)
        if amount == 0:
            continue
        if amount >= 1 and integer_pixel_shift:
            params[key] = _randint(n, -int(amount), int(amount), generator, dev).float()
        else:
            pixels = amount if amount >= 1 else amount * side
            params[key] = uniform(n, -pixels, pixels, generator, dev)
    if isinstance(zoom, (tuple, list)):
        z_lo, z_hi = float(zoom[0]), float(zoom[1])
    else:
        z_lo, z_hi = 1.0 - float(zoom), 1.0 + float(zoom)
    if (z_lo, z_hi) != (1.0, 1.0):
        params["zoom_x"] = uniform(n, z_lo, z_hi, generator, dev)
        params["zoom_y"] = (params["zoom_x"] if isotropic_zoom
                            else uniform(n, z_lo, z_hi, generator, dev))
    shr = _span(shear)
    if shr != (0.0, 0.0):
        params["shear"] = uniform(n, *shr, generator, dev)
    if not params:
        return random_flip(x, generator, hflip, vflip) if hflip or vflip else x
    for key, on in (("zoom_x", hflip), ("zoom_y", vflip)):
        if on:  # column sign -1 mirrors the output: the flip rides on the sampling pass
            sign = torch.where(_coin(n, 0.5, generator, dev), -1.0, 1.0)
            params[key] = params[key] * sign if key in params else sign
    theta = affine_theta(h, w, **params)
    return apply_affine(x, theta, fill_mode, fill_value, interpolation)


def random_crop(x: torch.Tensor, generator=None, padding: int = 4, fill_mode: str = "constant",
                fill_value: float = 0.0) -> torch.Tensor:
    """Pad by ``padding`` pixels, then crop each image back to H×W at a random offset.

    Exact whole-pixel moves (no resampling); the padding is constant or reflected.
    """
    padding = int(padding)
    if padding <= 0:
        return x
    n, c, h, w = x.shape
    if fill_mode == "reflect" and padding < min(h, w):
        xp = F.pad(x, (padding,) * 4, mode="reflect")
    elif fill_mode == "nearest":
        xp = F.pad(x, (padding,) * 4, mode="replicate")
    else:
        xp = F.pad(x, (padding,) * 4, mode="constant", value=fill_value)
    dy = _randint(n, 0, 2 * padding, generator, x.device)
    dx = _randint(n, 0, 2 * padding, generator, x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))               # N×H
    cols = (dx[:, None] + torch.arange(w, device=x.device))               # N×W
    xp = xp.gather(2, rows[:, None, :, None].expand(n, c, h, xp.shape[-1]))  # N×C×H×(W+2p)
    return xp.gather(3, cols[:, None, None, :].expand(n, c, h, w))           # N×C×H×W


def _box_mask(y0, x0, bh, bw, h, w) -> torch.Tensor:
    """N boxes (top, left, height, width as (N,) tensors) -> N×1×H×W bool mask."""
    ys = torch.arange(h, device=y0.device)
    xs = torch.arange(w, device=y0.device)
    my = (ys >= y0[:, None]) & (ys < (y0 + bh)[:, None])                   # N×H
    mx = (xs >= x0[:, None]) & (xs < (x0 + bw)[:, None])                   # N×W
    return (my[:, :, None] & mx[:, None, :]).unsqueeze(1)


def cutout(x: torch.Tensor, generator=None, size=0.5, p: float = 1.0,
           fill_value: float = 0.0) -> torch.Tensor:
    """Blank a square of ``size`` (pixels, or a fraction of the shorter side if < 1)
    centred anywhere in the image (it may hang over the edge), with probability ``p``."""
    n, _, h, w = x.shape
    side = int(round(size * min(h, w))) if size < 1 else int(size)
    if side <= 0:
        return x
    cy = _randint(n, 0, h - 1, generator, x.device)
    cx = _randint(n, 0, w - 1, generator, x.device)
    full = torch.full_like(cy, side)
    mask = _box_mask(cy - side // 2, cx - side // 2, full, full, h, w)
    if p < 1.0:
        mask = mask & _coin(n, p, generator, x.device).view(n, 1, 1, 1)
    return x.masked_fill(mask, fill_value)


def random_erasing(x: torch.Tensor, generator=None, p: float = 0.5, scale=(0.02, 0.33),
                   ratio=(0.3, 3.3), value: float | str = 0.0) -> torch.Tensor:
    """Random erasing (Zhong et al. 2017): with probability ``p`` replace a rectangle of
    area ``scale`` × H×W and aspect ``ratio`` by ``value`` (a number, or 'random' noise)."""
    n, c, h, w = x.shape
    dev = x.device
    area = uniform(n, scale[0], scale[1], generator, dev) * (h * w)
    log_r = uniform(n, math.log(ratio[0]), math.log(ratio[1]), generator, dev)
    r = torch.exp(log_r)
    bh = torch.sqrt(area * r).round().clamp(1, h).long()
    bw = torch.sqrt(area / r).round().clamp(1, w).long()
    y0 = (uniform(n, 0, 1, generator, dev) * (h - bh + 1)).long()
    x0 = (uniform(n, 0, 1, generator, dev) * (w - bw + 1)).long()
    mask = _box_mask(y0, x0, bh, bw, h, w) & _coin(n, p, generator, dev).view(n, 1, 1, 1)
    if value == "random":
        gdev = generator.device if generator is not None else dev
        noise = torch.randn(x.shape, generator=generator, device=gdev).to(dev, x.dtype)
        return torch.where(mask, noise, x)
    return x.masked_fill(mask, float(value))


def _clip(x, value_range):
    return x if value_range is None else x.clamp(value_range[0], value_range[1])


def random_brightness(x: torch.Tensor, generator=None, factor=0.2,
                      value_range=(0.0, 1.0)) -> torch.Tensor:
    """Add ``uniform(lo, hi) × (max - min of value_range)`` to every pixel of an image
    (Keras ``RandomBrightness``), then clip to ``value_range``."""
    lo, hi = _span(factor)
    span = (value_range[1] - value_range[0]) if value_range is not None else 1.0
    delta = uniform(x.shape[0], lo, hi, generator, x.device).view(-1, 1, 1, 1) * span
    return _clip(x + delta.to(x.dtype), value_range)


def random_brightness_scale(x: torch.Tensor, generator=None, scale_range=(0.8, 1.2),
                            value_range=(0.0, 1.0)) -> torch.Tensor:
    """Multiply each image by ``uniform(*scale_range)`` (Keras ``brightness_range``)."""
    f = uniform(x.shape[0], scale_range[0], scale_range[1], generator, x.device)
    return _clip(x * f.view(-1, 1, 1, 1).to(x.dtype), value_range)


def random_contrast(x: torch.Tensor, generator=None, factor=0.2,
                    value_range=(0.0, 1.0)) -> torch.Tensor:
    """Scale each image's distance from its per-channel mean by ``uniform(1-lo, 1+hi)``
    (Keras ``RandomContrast``), then clip to ``value_range``."""
    lo, hi = (factor, factor) if not isinstance(factor, (tuple, list)) else factor
    f = uniform(x.shape[0], 1.0 - float(lo), 1.0 + float(hi), generator, x.device)
    mean = x.mean(dim=(-2, -1), keepdim=True)
    return _clip((x - mean) * f.view(-1, 1, 1, 1).to(x.dtype) + mean, value_range)


def random_channel_shift(x: torch.Tensor, generator=None, intensity: float = 0.1,
                         value_range=None) -> torch.Tensor:
    """Add an independent ``uniform(-intensity, intensity)`` to each channel of each image."""
    n, c = x.shape[:2]
    delta = uniform(n * c, -intensity, intensity, generator, x.device).view(n, c, 1, 1)
    return _clip(x + delta.to(x.dtype), value_range)
