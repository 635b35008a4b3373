"""Model zoo: one file per family; importing this package registers them all."""

from . import airbench, imagenet, lenet, resnet_cifar, tutorial, vgg  # noqa: F401
from .common import ZooNet, new_classifier  # noqa: F401
