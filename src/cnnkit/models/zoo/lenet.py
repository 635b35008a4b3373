"""LeNet-5 (LeCun et al. 1998) as tutorials write it: tanh, average pooling, 'same' first conv."""

from __future__ import annotations

from torch import nn

from ..registry import register_model
from .common import ZooNet, check_input_shape, flat_features


class LeNet5(ZooNet):
    def __init__(self, num_classes: int = 10, input_shape=(28, 28, 1)):
        super().__init__()
        h, w, c = check_input_shape("lenet5", input_shape, min_hw=12)
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(c, 6, 5, padding=2), nn.Tanh()),  # C1: 28x28x6
            nn.AvgPool2d(2),  # S2: 14x14
            nn.Sequential(nn.Conv2d(6, 16, 5), nn.Tanh()),  # C3: 10x10x16
            nn.AvgPool2d(2),  # S4: 5x5x16
        )
        n = flat_features(self.features, (h, w, c))
        self.pre_logits = nn.Sequential(nn.Flatten(), nn.Linear(n, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh())
        self.num_features = 84
        self.num_classes = num_classes
        self.classifier = nn.Linear(84, num_classes)

    def feature_layer(self) -> nn.Module:
        return self.features[2]


@register_model("lenet5", family="lenet", input_shape=(28, 28, 1), num_classes=10,
                description="LeNet-5: C6-S-C16-S-F120-F84-F10, tanh + average pooling (61,706 params at 28x28x1)")
def lenet5(num_classes=10, input_shape=(28, 28, 1)):
    return LeNet5(num_classes, input_shape)
