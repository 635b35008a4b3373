"""MixUp and CutMix on whole batches: they change the targets, so they are *batch mixers*.

A batch mixer has ``mix_images(x, generator) -> (x, draw)`` and
``mix_targets(y, draw, num_classes) -> y_soft``: float N×C×H×W images in, the mixed images
out, then int64 class indices (or N×K rows) turned into soft N×K targets (rows summing to
1) mixed the same way. The engine calls ``mix_images`` instead of ``augment(x, generator)``
when the augmentation has it, and ``mix_targets`` with the width of the model's output
once the forward pass has run, so the loss sees the soft targets (``mix(x, y, generator,
num_classes)`` does both for a caller). ``Augment`` with a mixing key is a batch mixer.

- ``Mixing(mixup_alpha=0.2, cutmix_alpha=1.0, prob=1.0, switch_prob=0.5, mode='batch')``:
  timm's ``Mixup`` semantics. With both alphas, each batch is CutMix with probability
  ``switch_prob`` else MixUp; ``prob`` is the chance a batch is mixed at all; ``lam`` is
  drawn from Beta(alpha, alpha), once per batch (``mode='batch'``, timm's default; CutMix
  then pastes one box for the whole batch) or per image (``'elem'``, as Keras's layers draw
  it). The partner of image i is a random
  permutation of the batch. CutMix pastes a box of area ``1 - lam`` (clipped at the
  edges, timm's ``rand_bbox``) and the label weight is the pasted area's true share.
- Label smoothing stays in the loss (``--label-smoothing``): smoothing is affine, so
  smoothing the mixed rows equals mixing smoothed one-hots (timm's ``mixup_target``).
- ``MixUp(alpha=0.2, seed=None)`` / ``CutMix(factor=1.0, seed=None)``: Keras 3's layers,
  called on ``{"images": NHWC, "labels": one-hot}`` dicts as in Keras, and usable as
  ``fit(..., augment=MixUp(0.2))``.

Accuracy on mixed training batches is taken against the dominant label (the argmax of the
soft row), as the metrics do for one-hot rows; validation data is never mixed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["Mixing", "MixUp", "CutMix", "soft_targets", "cutmix_boxes", "with_generator",
           "is_mixer", "MIX_MODES"]

MIX_MODES = ("batch", "elem")


def soft_targets(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class indices (N,) -> one-hot float rows; N×K rows -> float rows."""
    if y.ndim == 2 and y.shape[1] == num_classes:
        return y.float()
    return F.one_hot(y.reshape(-1).long(), num_classes).float()


def _beta(alpha: float, n: int, generator) -> torch.Tensor:
    """``n`` draws of Beta(alpha, alpha) from ``generator`` (two seeded Gammas)."""
    a = torch.full((n,), float(alpha))
    ga = torch._standard_gamma(a, generator=generator)
    gb = torch._standard_gamma(a, generator=generator)
    return ga / (ga + gb).clamp_min(1e-12)


def cutmix_boxes(lam: torch.Tensor, height: int, width: int, generator):
    """timm's ``rand_bbox`` per image: a box of area about ``(1 - lam) H W`` centred
    uniformly, clipped at the edges. Returns (top, left, box height, box width) as (N,)
    long tensors."""
    n = lam.shape[0]
    ratio = torch.sqrt(1.0 - lam)
    cut_h, cut_w = (ratio * height).long(), (ratio * width).long()
    cy = torch.randint(0, height, (n,), generator=generator)
    cx = torch.randint(0, width, (n,), generator=generator)
    y0, y1 = (cy - cut_h // 2).clamp(0, height), (cy + cut_h // 2).clamp(0, height)
    x0, x1 = (cx - cut_w // 2).clamp(0, width), (cx + cut_w // 2).clamp(0, width)
    return y0, x0, y1 - y0, x1 - x0


def _box_mask(y0, x0, bh, bw, h, w, device) -> torch.Tensor:
    """Boxes -> N×1×H×W bool mask (True inside the box)."""
    ys, xs = torch.arange(h), torch.arange(w)
    my = (ys >= y0[:, None]) & (ys < (y0 + bh)[:, None])                   # N×H
    mx = (xs >= x0[:, None]) & (xs < (x0 + bw)[:, None])                   # N×W
    return (my[:, :, None] & mx[:, None, :]).unsqueeze(1).to(device)


class Mixing:
    """MixUp / CutMix with timm's ``Mixup`` arguments (see the module doc)."""

    def __init__(self, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, prob: float = 1.0,
                 switch_prob: float = 0.5, mode: str = "batch", num_classes: int | None = None):
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ValueError(f"mixup and cutmix alphas must be >= 0, got {mixup_alpha}, "
                             f"{cutmix_alpha}")
        if not mixup_alpha and not cutmix_alpha:
            raise ValueError("give mixup_alpha or cutmix_alpha (or both) above 0")
        for name, p in (("prob", prob), ("switch_prob", switch_prob)):
            if not 0 <= p <= 1:
                raise ValueError(f"mix {name} must be in [0, 1], got {p}")
        if mode not in MIX_MODES:
            raise ValueError(f"mix mode must be one of {', '.join(MIX_MODES)}, got {mode!r}")
        self.mixup_alpha, self.cutmix_alpha = float(mixup_alpha), float(cutmix_alpha)
        self.prob, self.switch_prob, self.mode = float(prob), float(switch_prob), mode
        self.num_classes = num_classes
        self.last: dict = {}   # the last mix()'s draw: 'kind', 'lam' (N,), 'partner' (N,)

    def _kind(self, generator) -> str:
        if not self.cutmix_alpha:
            return "mixup"
        if not self.mixup_alpha:
            return "cutmix"
        coin = float(torch.rand((), generator=generator))
        return "cutmix" if coin < self.switch_prob else "mixup"

    def mix_images(self, x: torch.Tensor, generator=None):
        """Mix float N×C×H×W ``x``; returns (mixed x, the draw) for :meth:`mix_targets`."""
        n, _, h, w = x.shape
        if float(torch.rand((), generator=generator)) >= self.prob or n < 2:
            return x, {"kind": "none"}
        kind = self._kind(generator)
        alpha = self.cutmix_alpha if kind == "cutmix" else self.mixup_alpha
        lam = _beta(alpha, 1 if self.mode == "batch" else n, generator).expand(n).clone()
        partner = torch.randperm(n, generator=generator)
        other = partner.to(x.device)
        if kind == "mixup":  # lam x + (1 - lam) x[partner], one kernel
            x = torch.lerp(x[other], x, lam.to(x.device, x.dtype).view(n, 1, 1, 1))
        elif self.mode == "batch":  # one box for the batch (timm's): copy just that region
            y0, x0, bh, bw = (int(b) for b in cutmix_boxes(lam[:1], h, w, generator))
            x = x.clone()
            x[..., y0:y0 + bh, x0:x0 + bw] = x[other, :, y0:y0 + bh, x0:x0 + bw]
            lam = torch.full((n,), 1.0 - bh * bw / (h * w))  # the pasted area's true share
        else:
            boxes = cutmix_boxes(lam, h, w, generator)
            x = torch.where(_box_mask(*boxes, h, w, x.device), x[other], x)
            lam = 1.0 - (boxes[2] * boxes[3]).float() / (h * w)
        return x, {"kind": kind, "lam": lam, "partner": partner}

    @staticmethod
    def mix_targets(y: torch.Tensor, draw: dict, num_classes: int) -> torch.Tensor:
        """Labels (N,) or N×K rows -> soft N×K rows mixed as ``draw`` mixed the images."""
        targets = soft_targets(y, num_classes)
        if draw["kind"] == "none":
            return targets
        lam = draw["lam"].to(targets.device).view(-1, 1)
        return targets * lam + targets[draw["partner"].to(targets.device)] * (1 - lam)

    def mix(self, x: torch.Tensor, y: torch.Tensor, generator=None, num_classes=None):
        """(x float N×C×H×W, y (N,) or N×K) -> (mixed x, soft N×K targets). ``num_classes``
        is needed for index labels unless given to the constructor (or the rows are one-hot)."""
        k = num_classes or self.num_classes or (y.shape[1] if y.ndim == 2 else None)
        if k is None:
            raise ValueError("mixing index labels needs num_classes (Mixing(num_classes=K) "
                             "or mix(..., num_classes=K))")
        x, draw = self.mix_images(x, generator)
        self.last = draw
        return x, self.mix_targets(y, draw, k)

    def __call__(self, x, y, generator=None):
        return self.mix(x, y, generator)

    def config(self) -> dict:
        return {"mixup": self.mixup_alpha, "cutmix": self.cutmix_alpha, "mix_prob": self.prob,
                "switch_prob": self.switch_prob, "mix_mode": self.mode}

    def __repr__(self) -> str:
        return f"Mixing({', '.join(f'{k}={v!r}' for k, v in self.config().items())})"


class _KerasMixLayer(torch.nn.Module):
    """Keras 3's calling convention: ``layer({"images": NHWC, "labels": one-hot})`` -> the
    same dict mixed (``training=False`` passes it through); a batch mixer for ``fit``."""

    def __init__(self, mixing: Mixing, seed=None, name=None, **kwargs):
        super().__init__()
        self.mixing, self.seed, self.name = mixing, seed, name
        self._generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None

    def mix_images(self, x, generator=None):
        return self.mixing.mix_images(x, generator if generator is not None else self._generator)

    def mix_targets(self, y, draw, num_classes):
        return self.mixing.mix_targets(y, draw, num_classes)

    def forward(self, data, training=True):
        if not isinstance(data, dict) or "images" not in data or "labels" not in data:
            raise ValueError(f"{type(self).__name__} takes {{'images': ..., 'labels': one-hot "
                             "rows}: it mixes the labels too")
        if not training:
            return data
        images = torch.as_tensor(data["images"]).float()
        labels = torch.as_tensor(data["labels"]).float()
        if labels.ndim != 2:
            raise ValueError(f"{type(self).__name__} takes one-hot labels (N, classes), as "
                             "Keras's does; use cnnkit.utils.to_categorical(labels)")
        mixed, draw = self.mix_images(images.permute(0, 3, 1, 2), self._generator)  # NHWC in
        return {**data, "images": mixed.permute(0, 2, 3, 1),
                "labels": self.mix_targets(labels, draw, labels.shape[1])}


class MixUp(_KerasMixLayer):
    """``keras.layers.MixUp(alpha=0.2, seed=None)``: per-image ``lam`` ~ Beta(alpha, alpha)
    and a random partner, labels mixed by the same ``lam``."""

    def __init__(self, alpha: float = 0.2, data_format=None, seed=None, **kwargs):
        super().__init__(Mixing(mixup_alpha=alpha, mode="elem"), seed, **kwargs)
        self.alpha = alpha

    def get_config(self) -> dict:
        return {"alpha": self.alpha, "seed": self.seed}


class CutMix(_KerasMixLayer):
    """``keras.layers.CutMix(factor=1.0, seed=None)``: a partner's box pasted into each image,
    labels mixed by the box's share of the area. ``factor``: the Beta alpha, or a (lo, hi)
    pair drawn uniformly per call as Keras does."""

    def __init__(self, factor=1.0, seed=None, data_format=None, **kwargs):
        lo, hi = factor if isinstance(factor, (tuple, list)) else (float(factor), float(factor))
        super().__init__(Mixing(cutmix_alpha=max(hi, 1e-6), mode="elem"), seed, **kwargs)
        self.factor, self._range = factor, (float(lo), float(hi))

    def mix_images(self, x, generator=None):
        lo, hi = self._range
        if lo != hi:
            u = float(torch.rand((), generator=generator or self._generator))
            self.mixing.cutmix_alpha = lo + (hi - lo) * u + 1e-6
        return super().mix_images(x, generator)

    def get_config(self) -> dict:
        return {"factor": self.factor, "seed": self.seed}


class with_generator:  # noqa: N801 - reads as a function at the call site
    """``augment`` bound to the run's own ``generator`` (the one its checkpoint keeps),
    whatever generator the engine hands it; a batch mixer stays one."""

    def __init__(self, augment, generator: torch.Generator):
        self.augment, self.generator = augment, generator
        if is_mixer(augment):
            self.mix_images = lambda x, _engine_gen=None: augment.mix_images(x, generator)
            self.mix_targets = augment.mix_targets

    def __call__(self, x, _engine_gen=None):
        return self.augment(x, self.generator)


def is_mixer(augment) -> bool:
    """Whether ``augment`` mixes images across the batch (and so the targets)."""
    return callable(getattr(augment, "mix_images", None)) and getattr(augment, "mixes", True)
