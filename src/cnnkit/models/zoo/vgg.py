"""A small VGG-style network for 32x32 images: three blocks of two 3x3 convs and a max-pool."""

from __future__ import annotations

from torch import nn

from ..registry import register_model
from .common import ZooNet, check_input_shape, flat_features


def vgg_block(cin: int, cout: int, batch_norm: bool, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(2):
        layers.append(nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.ReLU())
    layers.append(nn.MaxPool2d(2))
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class VGGSmall(ZooNet):
    def __init__(self, num_classes: int = 10, input_shape=(32, 32, 3), widths=(32, 64, 128),
                 dense: int = 128, batch_norm: bool = True, dropout: float = 0.2):
        super().__init__()
        h, w, c = check_input_shape("vgg-small", input_shape, min_hw=2 ** len(widths))
        blocks, cin = [], c
        for width in widths:
            blocks.append(vgg_block(cin, width, batch_norm, dropout))
            cin = width
        self.features = nn.Sequential(*blocks)  # (N, widths[-1], H/8, W/8)
        n = flat_features(self.features, (h, w, c))
        head: list[nn.Module] = [nn.Flatten(), nn.Linear(n, dense), nn.ReLU()]
        if dropout:
            head.append(nn.Dropout(dropout))
        self.pre_logits = nn.Sequential(*head)
        self.num_features = dense
        self.num_classes = num_classes
        self.classifier = nn.Linear(dense, num_classes)


@register_model("vgg-small", family="vgg", input_shape=(32, 32, 3), num_classes=10,
                description="VGG-style: 3 blocks of 2 conv3x3 (32/64/128) + BN + max-pool, Dense128")
def vgg_small(num_classes=10, input_shape=(32, 32, 3), widths=(32, 64, 128), dense=128,
              batch_norm=True, dropout=0.2):
    return VGGSmall(num_classes, input_shape, tuple(widths), dense, batch_norm, dropout)
