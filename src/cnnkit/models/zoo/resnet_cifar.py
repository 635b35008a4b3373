"""A small fast ResNet for 32x32 images (the "ResNet-9" of Myrtle.ai / airbench lineage).

prep conv -> [conv, pool, residual(2 convs)] -> [conv, pool] -> [conv, pool, residual] ->
global max-pool -> linear, with logits scaled by 1/8 (as in the original recipe, it lets
SGD use a high learning rate). BatchNorm after every conv. ``width`` sets the channels
(width, 2w, 4w, 8w); the original is 64 (6.6M params). The default ``width=16`` (413k params)
costs ~16x less compute, which is what a CPU can afford: on this project's 2-core machine it
reaches ~66% held-out accuracy on CIFAR-10 in ~7 minutes of a loaded machine
(``benchmarks/resnet_cifar10.py``); ``width=32`` or 64 go further with more time.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import register_model
from .common import ZooNet, check_input_shape


def conv_bn(cin: int, cout: int, pool: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=False)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    layers += [nn.BatchNorm2d(cout), nn.ReLU()]
    return nn.Sequential(*layers)


class Residual(nn.Module):
    """x + f(x) with f = two conv-bn-relu."""

    def __init__(self, width: int):
        super().__init__()
        self.res = nn.Sequential(conv_bn(width, width), conv_bn(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res(x)


class Stage(nn.Module):
    """conv-(pool)-bn-relu, optionally followed by a residual pair."""

    def __init__(self, cin: int, cout: int, residual: bool):
        super().__init__()
        self.conv = conv_bn(cin, cout, pool=True)
        self.residual = Residual(cout) if residual else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(self.conv(x))


class ResNetCifar(ZooNet):
    def __init__(self, num_classes: int = 10, input_shape=(32, 32, 3), width: int = 16,
                 logit_scale: float = 0.125):
        super().__init__()
        h, w, c = check_input_shape("resnet-cifar", input_shape, min_hw=8)
        w1, w2, w3, w4 = width, 2 * width, 4 * width, 8 * width
        self.features = nn.Sequential(
            conv_bn(c, w1),  # prep: (N, w1, H, W)
            Stage(w1, w2, residual=True),  # (N, w2, H/2, W/2)
            Stage(w2, w3, residual=False),  # (N, w3, H/4, W/4)
            Stage(w3, w4, residual=True),  # (N, w4, H/8, W/8)
        )
        self.pre_logits = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.num_features = w4
        self.num_classes = num_classes
        self.logit_scale = logit_scale
        self.classifier = nn.Linear(w4, num_classes, bias=False)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre_logits(x)
        return x if pre_logits else self.classifier(x) * self.logit_scale


@register_model("resnet-cifar", family="resnet-cifar", input_shape=(32, 32, 3), num_classes=10,
                description="ResNet-9 for 32x32 images (airbench lineage), width 16 (413k params): fast on a CPU")
def resnet_cifar(num_classes=10, input_shape=(32, 32, 3), width=16, logit_scale=0.125):
    return ResNetCifar(num_classes, input_shape, width, logit_scale)
