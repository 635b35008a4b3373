import numpy as np
import pytest
import torch
from torch import nn

from cnnkit.models.base import Model


def tiny_cnn(channels: int = 3, classes: int = 4, size: int = 16) -> Model:
    """Conv-ReLU-Pool-Conv-ReLU-Pool-Linear on size×size×channels, as a cnnkit.Model."""
    torch.manual_seed(0)
    side = ((size - 2) // 2 - 2) // 2  # after conv3-pool2-conv3-pool2
    n = 8 * side * side
    net = nn.Sequential(nn.Conv2d(channels, 4, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                        nn.Conv2d(4, 8, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(n, classes))
    return Model(net, input_shape=(size, size, channels),
                 class_names=[f"c{i}" for i in range(classes)])


@pytest.fixture
def model():
    return tiny_cnn()


@pytest.fixture
def image():
    return np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
