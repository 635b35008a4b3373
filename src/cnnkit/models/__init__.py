"""Models: the Keras facade (Model, Sequential) and the zoo, found by name.

    cnnkit.models.create("resnet18", num_classes=10, pretrained=False)
    cnnkit.models.list("res*")
"""

from .base import Model
from .functional import Functional
from .saving import load_model, save_model
from .registry import create, list_models, register_model
from .sequential import Sequential

list = list_models  # noqa: A001 - timm/Keras-style spelling: cnnkit.models.list('res*')

__all__ = ["Model", "Sequential", "Functional", "load_model", "save_model", "create", "list", "list_models", "register_model"]
