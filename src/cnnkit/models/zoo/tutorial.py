"""The tutorials' networks, layer for layer (shared/seeds 001-003).

Keras names in comments; Keras's ``Dense(10, activation='softmax')`` output layer is a plain
``Linear`` here (networks return logits; the loss and ``predict`` apply the softmax), which
changes no parameter count.
"""

from __future__ import annotations

from torch import nn

from ..registry import register_model
from .common import ZooNet, check_input_shape, flat_features


def conv_relu(cin: int, cout: int, k: int = 3, padding: int | str = 0,
              keras: bool = False) -> nn.Sequential:
    """Keras ``Conv2D(cout, (k, k), activation='relu')`` (``keras``: initialised as Keras does)."""
    conv = nn.Conv2d(cin, cout, k, padding=padding)
    return nn.Sequential(keras_init(conv) if keras else conv, nn.ReLU())


def keras_init(layer: nn.Conv2d | nn.Linear):
    """Keras's defaults on a just-built layer: glorot_uniform kernel, zero bias (drawn right
    after torch's own init, in the order cnnkit's Keras layers draw them)."""
    from ...layers.core import _glorot_uniform_
    k = layer.weight[0, 0].numel() if layer.weight.ndim == 4 else 1  # kernel window
    _glorot_uniform_(layer.weight, layer.weight.shape[1] * k, layer.weight.shape[0] * k)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


class Flatten(nn.Module):
    """Keras's ``Flatten``: values in (H, W, C) order, so a Dense kernel after it is Keras's."""

    def forward(self, x):
        return x.permute(0, 2, 3, 1).flatten(1)  # (N, H*W*C)


class TutorialCNN(ZooNet):
    """Conv(+ReLU)/MaxPool stack, Flatten, optional Dense(+ReLU) layers, Dense classifier.

    ``convs`` are the Conv2D widths (3x3, 'valid', each followed by MaxPooling2D(2)),
    ``dense`` the hidden Dense widths, ``dropout`` the rate after each pool and hidden
    Dense (0 = none). ``keras``: built as the Keras tutorial builds it (glorot_uniform
    kernels, zero biases, flattened in (H, W, C) order), weight for weight the network
    ``cnnkit.Sequential`` makes of the same Keras layers with the same seed.
    """

    def __init__(self, convs=(32, 64), dense=(64,), num_classes: int = 10,
                 input_shape=(32, 32, 3), dropout: float = 0.0, keras: bool = False):
        super().__init__()
        h, w, c = check_input_shape(type(self).__name__, input_shape, min_hw=4 * len(convs))
        layers: list[nn.Module] = []
        cin = c
        for width in convs:
            layers += [conv_relu(cin, width, keras=keras), nn.MaxPool2d(2)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            cin = width
        self.features = nn.Sequential(*layers)
        n = flat_features(self.features, (h, w, c))
        head: list[nn.Module] = [Flatten() if keras else nn.Flatten()]
        linear = (lambda i, o: keras_init(nn.Linear(i, o))) if keras else nn.Linear
        for width in dense:
            head += [linear(n, width), nn.ReLU()]
            if dropout:
                head.append(nn.Dropout(dropout))
            n = width
        self.pre_logits = nn.Sequential(*head)
        self.num_features = n
        self.num_classes = num_classes
        self.classifier = linear(n, num_classes)

    def feature_layer(self) -> nn.Module:
        return [m for m in self.features if isinstance(m, nn.Sequential)][-1]  # last Conv+ReLU


@register_model("simple-cnn", family="tutorial", input_shape=(32, 32, 3), num_classes=10,
                description="seed 003: Conv32-Pool-Conv64-Pool-Dense64-Dense10 (167,562 params at 32x32x3)")
def simple_cnn(num_classes=10, input_shape=(32, 32, 3)):
    return TutorialCNN((32, 64), (64,), num_classes, input_shape)


@register_model("mnist-1conv", family="tutorial", input_shape=(28, 28, 1), num_classes=10,
                description="seeds 001/002: Conv32-Pool-Flatten-Dense10 for MNIST (54,410 params)")
def mnist_1conv(num_classes=10, input_shape=(28, 28, 1)):
    return TutorialCNN((32,), (), num_classes, input_shape)


@register_model("mnist-2conv", family="tutorial", input_shape=(28, 28, 1), num_classes=10,
                description="seed 001 (Keras): Conv32-Pool-Conv64-Pool-Dense128-Dense10 (225,034 params)")
def mnist_2conv(num_classes=10, input_shape=(28, 28, 1), keras: bool = False):
    """``keras=True``: cnnkit's default network for the bundled digits (``run.build``)."""
    return TutorialCNN((32, 64), (128,), num_classes, input_shape, keras=keras)


class Seed001CNN(ZooNet):
    """seed 001's PyTorch ``CNN``: two convs with max-pooling, dropout 0.5, fc 128, fc 10."""

    def __init__(self, num_classes: int = 10, input_shape=(32, 32, 3), dropout: float = 0.5):
        super().__init__()
        h, w, c = check_input_shape("seed001-cnn", input_shape, min_hw=10)
        self.features = nn.Sequential(
            conv_relu(c, 32), nn.MaxPool2d(2), nn.Dropout(dropout),
            conv_relu(32, 64), nn.MaxPool2d(2), nn.Dropout(dropout),
        )
        n = flat_features(self.features, (h, w, c))  # 64 * 6 * 6 at 32x32
        self.pre_logits = nn.Sequential(nn.Flatten(), nn.Linear(n, 128), nn.ReLU(), nn.Dropout(dropout))
        self.num_features = 128
        self.num_classes = num_classes
        self.classifier = nn.Linear(128, num_classes)

    def feature_layer(self) -> nn.Module:
        return self.features[3]


@register_model("seed001-cnn", family="tutorial", input_shape=(32, 32, 3), num_classes=10,
                description="seed 001 (PyTorch): Conv32-Pool-Conv64-Pool with dropout 0.5, fc128, fc10")
def seed001_cnn(num_classes=10, input_shape=(32, 32, 3), dropout=0.5):
    return Seed001CNN(num_classes, input_shape, dropout)
