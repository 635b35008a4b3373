"""airbench-style network: the fastest known way to train a CIFAR-10 classifier from scratch.

After Keller Jordan's airbench94 (94% on CIFAR-10 in 3.29 s on an A100), written in our words:

    whiten   Conv k×k (no padding, bias) -> act      frozen patch-whitening filters (optional)
    block1   Conv3×3 -> MaxPool2 -> BN -> act -> Conv3×3 -> BN -> act
    block2   same, wider
    block3   same
    head     global max pool -> Linear (no bias) -> × logit_scale

- BatchNorm has no trainable scale (its weight is frozen at 1); only the shift learns.
- Every 3×3 conv starts as an identity (dirac) on its first ``in`` channels: an implicit
  residual that lets the plain stack train fast without skip connections.
- ``whiten_init(images)`` sets the first conv to the eigenvectors of the 2×2 patch
  covariance of (normalised) training images, scaled by 1/sqrt(eigenvalue), and their
  negatives: decorrelated inputs from step 0. The recipe freezes its weight and trains its
  bias for a few epochs. Without it the layer is an ordinary trainable conv.
- ``widths`` set the cost: (64, 256, 256) is airbench94 (about 0.7 GFLOP per training
  image); the CPU recipes use much narrower ones.

Shapes at 32×32: 32 -> whiten 31 -> 15 -> 7 -> 3 -> 1 (global max). 28×28 digits: 27 -> 13
-> 6 -> 3 -> 1.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import register_model
from .common import ZooNet, check_input_shape

__all__ = ["AirbenchNet", "ConvGroup", "airbench"]

_ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}


def _activation(name: str) -> nn.Module:
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {name!r}") from None


class ScaleFreeBatchNorm(nn.BatchNorm2d):
    """BatchNorm whose scale stays 1 (frozen); the bias trains. ``momentum`` is torch's."""

    def __init__(self, num_features: int, momentum: float = 0.4, eps: float = 1e-12):
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.weight.requires_grad_(False)


def dirac_conv(cin: int, cout: int, k: int = 3) -> nn.Conv2d:
    """3×3 'same' conv, no bias, identity-initialised on its first min(cin, cout) channels."""
    conv = nn.Conv2d(cin, cout, k, padding="same", bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[:cin])
    return conv


class ConvGroup(nn.Module):
    """conv -> maxpool(2) -> BN -> act -> conv -> BN -> act. (N, cin, H, W) -> (N, cout, H/2, W/2)."""

    def __init__(self, cin: int, cout: int, activation: str = "gelu", bn_momentum: float = 0.4):
        super().__init__()
        self.conv1 = dirac_conv(cin, cout)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = ScaleFreeBatchNorm(cout, bn_momentum)
        self.act1 = _activation(activation)
        self.conv2 = dirac_conv(cout, cout)
        self.norm2 = ScaleFreeBatchNorm(cout, bn_momentum)
        self.act2 = _activation(activation)

    def forward(self, x):
        x = self.act1(self.norm1(self.pool(self.conv1(x))))
        return self.act2(self.norm2(self.conv2(x)))


class AirbenchNet(ZooNet):
    """See the module docstring. ``bn_momentum`` is torch's convention (airbench's 0.6 = 0.4 here)."""

    def __init__(self, num_classes: int = 10, input_shape=(32, 32, 3), widths=(64, 256, 256),
                 whiten_kernel: int = 2, whiten_width: int | None = None, activation: str = "gelu",
                 bn_momentum: float = 0.4, logit_scale: float = 1 / 9):
        super().__init__()
        h, w, c = check_input_shape("airbench", input_shape, min_hw=whiten_kernel + 15)
        if len(widths) != 3:
            raise ValueError(f"airbench: widths must be three block widths, got {widths!r}")
        self.whiten_width = int(whiten_width or 2 * c * whiten_kernel ** 2)
        self.features = nn.Sequential(
            nn.Conv2d(c, self.whiten_width, whiten_kernel, padding=0, bias=True),  # whiten
            _activation(activation),
            ConvGroup(self.whiten_width, widths[0], activation, bn_momentum),
            ConvGroup(widths[0], widths[1], activation, bn_momentum),
            ConvGroup(widths[1], widths[2], activation, bn_momentum),
        )
        with torch.no_grad():
            self.features[0].bias.zero_()
        self.pre_logits = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.num_features = int(widths[2])
        self.num_classes = num_classes
        self.classifier = nn.Linear(self.num_features, num_classes, bias=False)
        self.logit_scale = float(logit_scale)

    @property
    def whiten(self) -> nn.Conv2d:
        return self.features[0]

    def forward_head(self, x, pre_logits: bool = False):
        x = self.pre_logits(x)  # (N, widths[2])
        if pre_logits:
            return x
        return self.classifier(x) * self.logit_scale

    def blocks(self):
        return [(f"features.{i}", self.features[i]) for i in (0, 2, 3, 4)]

    def feature_layer(self):
        return self.features[4]

    @torch.no_grad()
    def whiten_init(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the first conv from normalised float images (N, C, H, W): patch whitening."""
        conv = self.whiten
        k = conv.kernel_size[0]
        c = images.shape[1]
        patches = images.float().unfold(2, k, 1).unfold(3, k, 1)  # N, C, H', W', k, k
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k).double()
        cov = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)
        order = eigenvalues.argsort(descending=True)
        eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
        filters = (eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None]).reshape(-1, c, k, k)
        n = conv.out_channels
        weight = torch.cat((filters, -filters))[:n] if n <= 2 * len(filters) else None
        if weight is None:
            raise ValueError(f"whiten_init: {n} whitening filters need a {k}x{k} kernel with at "
                             f"least {(n + 1) // 2} patch dimensions; widen whiten_kernel")
        conv.weight.copy_(weight.to(conv.weight.dtype))


@register_model("airbench", family="airbench", input_shape=(32, 32, 3), num_classes=10,
                min_size=17, description="airbench94's net: whitening conv, 3 conv groups "
                "(64, 256, 256), scale-free BatchNorm, GELU; the 'fast' recipe's network")
def airbench(num_classes=10, input_shape=(32, 32, 3), widths=(64, 256, 256), whiten_kernel=2,
             whiten_width=None, activation="gelu", bn_momentum=0.4, logit_scale=1 / 9):
    return AirbenchNet(num_classes, input_shape, tuple(widths), whiten_kernel, whiten_width,
                       activation, bn_momentum, logit_scale)
