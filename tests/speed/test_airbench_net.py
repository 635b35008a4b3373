"""The airbench-style network: shapes, identity init, scale-free BatchNorm, whitening."""

from __future__ import annotations

import pytest
import torch

from cnnkit.models import registry
from cnnkit.models.zoo.airbench import AirbenchNet


@pytest.mark.parametrize("shape", [(32, 32, 3), (28, 28, 1), (17, 17, 3)])
def test_shapes(shape):
    net = AirbenchNet(num_classes=7, input_shape=shape, widths=(8, 16, 16)).eval()
    out = net(torch.zeros(2, shape[2], shape[0], shape[1]))
    assert out.shape == (2, 7)
    assert net.forward_features(torch.zeros(1, shape[2], shape[0], shape[1])).shape[1] == 16


def test_too_small_input_is_refused():
    with pytest.raises(ValueError, match="too small"):
        AirbenchNet(input_shape=(12, 12, 3))


def test_registered_in_the_zoo():
    model = registry.create("airbench", num_classes=10, widths=(8, 8, 8))
    assert model.architecture["name"] == "airbench"
    assert model.module.num_features == 8


def test_batchnorm_has_no_trainable_scale_and_convs_start_as_identity():
    net = AirbenchNet(widths=(8, 16, 16))
    group = net.features[2]
    assert not group.norm1.weight.requires_grad and group.norm1.bias.requires_grad
    w = net.features[3].conv2.weight  # 16 -> 16: identity on every channel
    x = torch.randn(1, 16, 5, 5)
    torch.testing.assert_close(torch.nn.functional.conv2d(x, w, padding=1), x)


def test_whiten_init_decorrelates_patches():
    torch.manual_seed(0)
    base = torch.randn(64, 3, 16, 16)
    images = base + 0.8 * base.roll(1, dims=1)  # strongly correlated channels
    net = AirbenchNet(input_shape=(16 + 4, 16 + 4, 3), widths=(8, 8, 8))
    net.whiten_init(images, eps=0.0)
    out = torch.nn.functional.conv2d(images, net.whiten.weight[:12])  # the positive half
    flat = out.permute(0, 2, 3, 1).reshape(-1, 12)
    cov = flat.T @ flat / len(flat)
    torch.testing.assert_close(cov, torch.eye(12), atol=0.05, rtol=0)
    torch.testing.assert_close(net.whiten.weight[12:], -net.whiten.weight[:12])
