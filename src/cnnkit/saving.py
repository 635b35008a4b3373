"""``cnnkit.saving``: Keras's module path for saving and loading models."""

from .models.saving import load_model, load_weights, save_model, save_weights

__all__ = ["load_model", "save_model", "load_weights", "save_weights"]
