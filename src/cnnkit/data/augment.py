"""Augmentation on whole batches: ``Augment`` (a callable ``(x, generator) -> x`` for
``fit(..., augment=...)``), ``parse_augment_spec`` for the CLI, and the three Keras ways in.

- ``Augment(flip='horizontal', shift=0.1, rotate=15)``: float N×C×H×W in, same shape out;
  flip + rotation + shift + zoom + shear in ONE ``grid_sample`` pass (a flip alone is a
  mask and ``torch.where``), then crop with padding, brightness/contrast, cutout / random
  erasing.
- ``randaugment=2:9`` / ``trivialaugment``: per-image RandAugment / TrivialAugment
  (``randaugment.py``), after the geometry and crop; ``erasing=P`` is random erasing.
- ``mixup=ALPHA`` / ``cutmix=ALPHA`` (with ``mix_prob``, ``switch_prob``, ``mix_mode``):
  MixUp / CutMix across the batch (``mixing.py``), last; they mix the targets too, so an
  ``Augment`` with them is a batch mixer (``mix_images`` / ``mix_targets``) and the engine
  hands the loss soft targets.
- ``parse_augment_spec("flip,shift=0.1,rotate=15")`` -> ``Augment`` (the CLI's
  ``--augment``); ``Augment.spec()`` writes the same string back.
- Keras layers (``RandomFlip``, ``RandomRotation``, ``RandomTranslation``, ``RandomZoom``,
  ``RandomContrast``, ``RandomBrightness``) from ``augment_layers``; ``ImageDataGenerator``
  and ``from_keras_generator_args`` from ``image_generator``; both re-exported here.

Batches are expected in [0, 1] (the engine scales uint8 by 1/255 before augmenting), which
is what ``value_range=(0, 1)`` (the clip of brightness/contrast) assumes. Normalisation
(mean/std) is not augmentation: it belongs to the model's ``Preprocess``.
"""

from __future__ import annotations

import torch

from . import augment_ops as ops
from .augment_layers import (RandomBrightness, RandomContrast, RandomFlip, RandomRotation,
                             RandomTranslation, RandomZoom)

__all__ = ["Augment", "parse_augment_spec", "from_keras_generator_args",
           "ImageDataGenerator", "DataFlow", "RandomFlip", "RandomRotation",
           "RandomTranslation", "RandomZoom", "RandomContrast", "RandomBrightness"]

_FLIPS = {"h": "horizontal", "horizontal": "horizontal", "v": "vertical",
          "vertical": "vertical", "hv": "both", "vh": "both", "both": "both",
          "horizontal_and_vertical": "both"}


class Augment:
    """A batched augmentation pipeline, built from options.

    flip: 'horizontal' | 'vertical' | 'both' | True (= horizontal) | None.
    rotate: degrees, ``r`` -> uniform(-r, r) (or a (lo, hi) pair).
    shift: fraction of the side if < 1, whole pixels if >= 1; a number or (height, width).
    zoom: ``z`` -> scale uniform(1 - z, 1 + z) (> 1 zooms out) or a (lo, hi) pair of scales;
        ``isotropic_zoom=False`` draws height and width scales independently (Keras's
        ImageDataGenerator does).
    shear: degrees.
    crop: padding in pixels for a random crop back to the input size (whole-pixel moves).
    cutout: side of a blanked square, pixels (>= 1) or fraction of the shorter side.
    erase: probability of random erasing (Zhong et al.).
    brightness: additive, ``b`` -> uniform(-b, b) × the value range.
    brightness_range: multiplicative (lo, hi), Keras's ``brightness_range``.
    contrast: ``c`` -> factor uniform(1 - c, 1 + c) around each image's channel means.
    channel_shift: per-channel additive uniform(-s, s).
    fill_mode / fill_value / interpolation: how rotation, shift and zoom fill and sample.
    value_range: where brightness and contrast clip (None: no clip).
    randaugment: (num_ops, magnitude) of per-image RandAugment, or None.
    trivialaugment: per-image TrivialAugment Wide.
    mixup / cutmix: Beta alphas of MixUp / CutMix across the batch (0 = off); mix_prob: the
        chance a batch is mixed, switch_prob: CutMix's share when both are on, mix_mode:
        one lam per 'batch' (timm) or per 'elem' (image) - see ``mixing.Mixing``.
    """

    def __init__(self, flip=None, rotate=0.0, shift=0.0, zoom=0.0, shear=0.0, crop: int = 0,
                 cutout=0.0, erase: float = 0.0, brightness: float = 0.0,
                 brightness_range=None, contrast: float = 0.0, channel_shift: float = 0.0,
                 fill_mode: str = "reflect", fill_value: float = 0.0,
                 interpolation: str = "bilinear", isotropic_zoom: bool = True,
                 value_range=(0.0, 1.0), randaugment=None, trivialaugment: bool = False,
                 mixup: float = 0.0, cutmix: float = 0.0, mix_prob: float = 1.0,
                 switch_prob: float = 0.5, mix_mode: str = "batch"):
        if flip is True:
            flip = "horizontal"
        if flip in (False, "", "none"):
            flip = None
        if flip is not None and flip not in _FLIPS:
            raise ValueError(f"flip must be one of {sorted(set(_FLIPS.values()))}, got {flip!r}")
        if fill_mode not in ops.FILL_MODES:
            raise ValueError(f"fill_mode must be one of {ops.FILL_MODES}, got {fill_mode!r}")
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError("interpolation must be 'bilinear' or 'nearest'")
        self.flip = _FLIPS[flip] if flip is not None else None
        self.rotate, self.shift, self.zoom, self.shear = rotate, shift, zoom, shear
        self.crop, self.cutout, self.erase = int(crop), cutout, float(erase)
        self.brightness, self.contrast = brightness, contrast
        self.brightness_range = tuple(brightness_range) if brightness_range else None
        self.channel_shift = channel_shift
        self.fill_mode, self.fill_value, self.interpolation = fill_mode, fill_value, interpolation
        self.isotropic_zoom = isotropic_zoom
        self.value_range = tuple(value_range) if value_range is not None else None
        self._policies(randaugment, trivialaugment)
        self.mixup, self.cutmix = float(mixup), float(cutmix)
        self.mix_prob, self.switch_prob = float(mix_prob), float(switch_prob)
        self.mix_mode = mix_mode
        self.mixing = None
        if self.mixup or self.cutmix:
            from .mixing import Mixing
            self.mixing = Mixing(self.mixup, self.cutmix, self.mix_prob, self.switch_prob,
                                 self.mix_mode)

    def _policies(self, randaugment, trivialaugment):
        from .randaugment import RandAugment, TrivialAugment
        if randaugment is True:
            randaugment = (2, 9)
        if isinstance(randaugment, (int, float)) and not isinstance(randaugment, bool):
            randaugment = (int(randaugment), 9)
        self.randaugment = tuple(int(v) for v in randaugment) if randaugment else None
        self.trivialaugment = bool(trivialaugment)
        if self.randaugment and self.trivialaugment:
            raise ValueError("randaugment and trivialaugment are two policies; pick one")
        if self.randaugment and len(self.randaugment) != 2:
            raise ValueError(f"randaugment takes NUM_OPS:MAGNITUDE, got {randaugment!r}")
        self._policy = (RandAugment(*self.randaugment) if self.randaugment else
                        TrivialAugment() if self.trivialaugment else None)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """Augment a float N×C×H×W batch (uint8 is converted to float in [0, 1] first)."""
        if not x.is_floating_point():
            x = x.float().div_(255.0)
        g = generator
        # flips ride on the affine pass when there is one (else a mask + torch.where)
        x = ops.random_affine(x, g, rotation=self.rotate, shift=self.shift, zoom=self.zoom,
                              shear=self.shear, isotropic_zoom=self.isotropic_zoom,
                              fill_mode=self.fill_mode, fill_value=self.fill_value,
                              interpolation=self.interpolation,
                              hflip=self.flip in ("horizontal", "both"),
                              vflip=self.flip in ("vertical", "both"))
        if self.crop:
            crop_fill = self.fill_mode if self.fill_mode != "wrap" else "constant"
            x = ops.random_crop(x, g, self.crop, crop_fill, self.fill_value)
        if self._policy is not None:
            x = self._policy(x, g)
        if self.brightness:
            x = ops.random_brightness(x, g, self.brightness, self.value_range)
        if self.brightness_range:
            x = ops.random_brightness_scale(x, g, self.brightness_range, self.value_range)
        if self.contrast:
            x = ops.random_contrast(x, g, self.contrast, self.value_range)
        if self.channel_shift:
            x = ops.random_channel_shift(x, g, self.channel_shift, self.value_range)
        if self.cutout:
            x = ops.cutout(x, g, self.cutout, fill_value=self.fill_value)
        if self.erase:
            x = ops.random_erasing(x, g, p=self.erase)
        return x

    @property
    def mixes(self) -> bool:
        """Whether this pipeline mixes images across the batch (MixUp / CutMix)."""
        return self.mixing is not None

    def mix_images(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """The image ops, then MixUp / CutMix: (x, the draw for ``mix_targets``)."""
        x = self(x, generator)
        return self.mixing.mix_images(x, generator) if self.mixing else (x, {"kind": "none"})

    def mix_targets(self, y: torch.Tensor, draw: dict, num_classes: int) -> torch.Tensor:
        from .mixing import Mixing
        return Mixing.mix_targets(y, draw, num_classes)

    @property
    def active(self) -> bool:
        """Whether any random op is switched on."""
        zoom_on = (tuple(self.zoom) != (1.0, 1.0) if isinstance(self.zoom, (tuple, list))
                   else bool(self.zoom))
        shift_on = (any(self.shift) if isinstance(self.shift, (tuple, list)) else bool(self.shift))
        return bool(self.flip or self.rotate or shift_on or zoom_on or self.shear or self.crop
                    or self.cutout or self.erase or self.brightness or self.brightness_range
                    or self.contrast or self.channel_shift or self._policy is not None
                    or self.mixing is not None)

    # -- description, saving, CLI
    _DEFAULTS = dict(flip=None, rotate=0.0, shift=0.0, zoom=0.0, shear=0.0, crop=0,
                     cutout=0.0, erase=0.0, brightness=0.0, brightness_range=None,
                     contrast=0.0, channel_shift=0.0, fill_mode="reflect", fill_value=0.0,
                     interpolation="bilinear", isotropic_zoom=True, value_range=(0.0, 1.0),
                     randaugment=None, trivialaugment=False, mixup=0.0, cutmix=0.0,
                     mix_prob=1.0, switch_prob=0.5, mix_mode="batch")

    def config(self) -> dict:
        """Constructor arguments that differ from the defaults (JSON-friendly)."""
        out = {}
        for k, default in self._DEFAULTS.items():
            v = getattr(self, k)
            if isinstance(v, tuple):
                v = list(v)
            if v != (list(default) if isinstance(default, tuple) else default):
                out[k] = v
        return out

    get_config = config

    @classmethod
    def from_config(cls, config: dict) -> "Augment":
        return cls(**config)

    def spec(self) -> str:
        """The ``parse_augment_spec`` string for this pipeline."""
        parts = []
        for k, v in self.config().items():
            if isinstance(v, list):
                v = ":".join(_fmt(i) for i in v)
            elif isinstance(v, bool):
                v = "true" if v else "false"
            parts.append(f"{k}={_fmt(v)}")
        return ",".join(parts) or "none"

    def __repr__(self) -> str:
        return f"Augment({', '.join(f'{k}={v!r}' for k, v in self.config().items())})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Augment) and self.config() == other.config()


def _fmt(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


# spec keys -> (Augment argument, value when the key is given bare)
_SPEC_KEYS = {
    "flip": ("flip", "horizontal"), "hflip": ("flip", "horizontal"),
    "vflip": ("flip", "vertical"), "rotate": ("rotate", None), "rotation": ("rotate", None),
    "shift": ("shift", None), "translate": ("shift", None), "zoom": ("zoom", None),
    "shear": ("shear", None), "crop": ("crop", 4), "cutout": ("cutout", 0.5),
    "erase": ("erase", 0.5), "erasing": ("erase", 0.5), "brightness": ("brightness", None),
    "brightness_range": ("brightness_range", None), "contrast": ("contrast", None),
    "channel_shift": ("channel_shift", None), "fill": ("fill_mode", None),
    "fill_mode": ("fill_mode", None), "fill_value": ("fill_value", None),
    "interpolation": ("interpolation", None), "isotropic_zoom": ("isotropic_zoom", None),
    "value_range": ("value_range", None),
    "randaugment": ("randaugment", (2, 9)), "rand_augment": ("randaugment", (2, 9)),
    "trivialaugment": ("trivialaugment", True), "trivial_augment": ("trivialaugment", True),
    "mixup": ("mixup", 0.2), "cutmix": ("cutmix", 1.0), "mix_prob": ("mix_prob", None),
    "switch_prob": ("switch_prob", None), "mix_mode": ("mix_mode", None),
}
_WORDS = {"fill_mode", "interpolation", "flip", "mix_mode"}


def _number(text: str, key: str):
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"augment spec: {key}={text!r} is not a number") from None
    return int(v) if key == "crop" else v


def parse_augment_spec(spec: str | None) -> Augment | None:
    """``"flip,shift=0.1,rotate=15"`` -> ``Augment``; ``None``, ``""`` or ``"none"`` -> None.

    Items are ``key`` or ``key=value`` separated by commas; a pair is ``lo:hi`` (zoom
    scales, brightness_range) or ``height:width`` (shift). Keys: flip[=h|v|both], hflip,
    vflip, rotate=DEG, shift=F, zoom=F, shear=DEG, crop[=PAD], cutout[=SIZE], erase[=P],
    brightness=F, brightness_range=LO:HI, contrast=F, channel_shift=F,
    fill=constant|nearest|reflect|wrap, fill_value=V, interpolation=bilinear|nearest,
    randaugment[=OPS:MAGNITUDE], trivialaugment, mixup[=ALPHA], cutmix[=ALPHA],
    mix_prob=P, switch_prob=P, mix_mode=batch|elem.
    """
    if spec is None or spec.strip().lower() in ("", "none", "off", "false"):
        return None
    kwargs = {}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        key, _, text = item.partition("=")
        key = key.strip().lower().replace("-", "_")
        if key not in _SPEC_KEYS:
            raise ValueError(f"augment spec: unknown key {key!r}; known: "
                             f"{', '.join(sorted(_SPEC_KEYS))}")
        arg, bare = _SPEC_KEYS[key]
        text = text.strip()
        if not text:
            if bare is None:
                raise ValueError(f"augment spec: {key} needs a value ({key}=...)")
            value = bare
        elif arg in _WORDS:
            value = text
        elif arg in ("isotropic_zoom", "trivialaugment"):
            value = text.lower() in ("1", "true", "yes")
        elif ":" in text:
            value = tuple(_number(t, key) for t in text.split(":"))
        else:
            value = _number(text, key)
        if arg == "flip" and key == "vflip" and kwargs.get("flip") == "horizontal" or (
                arg == "flip" and key in ("flip", "hflip") and kwargs.get("flip") == "vertical"):
            value = "both"
        kwargs[arg] = value
    if any(k in kwargs for k in ("mix_prob", "switch_prob", "mix_mode")) and not (
            kwargs.get("mixup") or kwargs.get("cutmix")):
        raise ValueError("augment spec: mix_prob, switch_prob and mix_mode go with mixup=ALPHA "
                         "or cutmix=ALPHA")
    return Augment(**kwargs)


def __getattr__(name):  # lazy: image_generator imports this module
    if name in ("ImageDataGenerator", "DataFlow", "from_keras_generator_args"):
        from . import image_generator
        return getattr(image_generator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
