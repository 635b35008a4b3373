"""What the service predicts with: a PyTorch model or an exported file, one interface.

``predict(uint8 N×H×W×C) -> N×K probabilities``, plus ``class_names``, ``input_shape``
(H, W, C), ``name``, ``runtime``, ``model`` (the ``nn.Module`` for Grad-CAM, or None),
``multi_label`` and ``thresholds`` (a multi-label model: sigmoid probabilities per label).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..explain import tensor_ready
from ..export import ExportedModel, deployable, is_exported
from .images import model_input_shape


class TorchPredictor:
    runtime = "pytorch"

    def __init__(self, model: nn.Module, input_shape=None, class_names=None):
        self.model = model.eval()
        self.input_shape = model_input_shape(model, input_shape)
        self._graph = deployable(model)
        self.device = next(model.parameters(), torch.empty(0)).device
        self.name = getattr(model, "name", type(model).__name__)
        self.multi_label = bool(getattr(model, "multi_label", False))
        self.thresholds = getattr(model, "thresholds", None)
        names = class_names or getattr(model, "class_names", None)
        if not names:
            with torch.inference_mode():
                k = self.predict(np.zeros((1, *self.input_shape), np.uint8)).shape[1]
            names = [str(i) for i in range(k)]
        self.class_names = list(names)

    def predict(self, images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(tensor_ready(images)).to(self.device)
            return self._graph(x).float().cpu().numpy()


def load_predictor(source, input_shape=None, class_names=None):
    """A model, an ``ExportedModel``, an exported file (.onnx / .pt) or a saved model folder."""
    if isinstance(source, nn.Module):
        return TorchPredictor(source, input_shape, class_names)
    if isinstance(source, (ExportedModel, TorchPredictor)):
        return source
    path = Path(source)
    if is_exported(path):
        return ExportedModel(path)
    from .. import load_model

    return TorchPredictor(load_model(path), input_shape, class_names)
