"""Sequential: a stack of layers with shapes inferred layer by layer, as in Keras."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..speed import kernels
from ..layers import InputSpec, Layer, Rescaling, ShapeError, default_name, keras_shape, keras_to_torch_shape
from ..keras_tensor import KerasTensor
from ..layers.merging import InputLayer
from .base import Model

__all__ = ["Sequential"]


def _pool_before_relu(layer: nn.Module, following: nn.Module) -> bool:
    """A relu-activated Conv2D/Dense followed by max pooling, with no hooks watching it."""
    return (getattr(layer, "activation_name", None) == "relu" and isinstance(layer, Layer)
            and type(following).__name__ == "MaxPooling2D" and hasattr(layer, "conv")
            and not layer._forward_hooks and not layer._forward_pre_hooks
            and not following._forward_hooks and not following._forward_pre_hooks)


def _has_weights(layer: nn.Module) -> bool:
    """Whether ``layer`` has (or may have, once built) weights. An unbuilt cnnkit Layer has no
    parameters yet; one that builds anything (``_build``) counts as weighted until built."""
    if isinstance(layer, Layer) and not layer.built:
        return type(layer)._build is not Layer._build
    return any(True for _ in layer.parameters())


def _rescales_raw_pixels(layers) -> bool:
    """A Rescaling before the first weighted layer: the model scales its input itself (the
    Keras tutorials' ``RandomFlip -> Rescaling(1/255) -> Conv2D``), so it takes raw pixels."""
    for layer in layers:
        if isinstance(layer, Rescaling):
            return True
        if _has_weights(layer):
            return False
    return False


class Sequential(Model):
    """``Sequential([layers...], name=...)``; ``add(layer)``; ``input_shape=`` on the first
    layer or an ``Input((H, W, C))``. Layers are built as soon as their input shape is known,
    so a shape that does not fit fails at once, naming the layer and both shapes."""

    def __init__(self, layers=None, name: str | None = None):
        super().__init__(module=None, name=name or "sequential", output="logits")
        self.layers = nn.ModuleList()
        self.output_shapes: list[tuple] = []  # torch layout, one per layer
        self._name_counts: dict[str, int] = {}
        self.memory_format = torch.channels_last  # cnnkit layers never assume NCHW strides
        for layer in layers or []:
            self.add(layer)

    # -- building --------------------------------------------------------------------
    def add(self, layer) -> None:
        self.__dict__.pop("_symbolic_graph", None)  # model.inputs/outputs are made again
        if isinstance(layer, (InputSpec, KerasTensor, InputLayer)):
            if len(self.layers):
                raise ValueError("Input(...) must come first in a Sequential")
            if isinstance(layer, KerasTensor):
                layer = layer.node.layer  # Input(...) is the output of an InputLayer
            self.input_shape = tuple(layer.shape)
            return
        if not isinstance(layer, nn.Module):
            raise TypeError(f"Sequential.add takes a layer (a torch.nn.Module), got {layer!r}")
        declared = getattr(layer, "declared_input_shape", None)
        if declared is None and isinstance(layer, Model):  # a base model brings its input shape
            declared = layer.input_shape
        if declared is not None and not len(self.layers) and self.input_shape is None:
            self.input_shape = tuple(declared)
        if getattr(layer, "name", None) is None or not isinstance(layer.name, str):
            layer.name = self._unique_name(default_name(layer))
        elif layer.name in self._name_counts:
            raise ValueError(f"two layers are named {layer.name!r}; layer names must be unique")
        else:
            self._name_counts[layer.name] = 1
        self.layers.append(layer)
        if isinstance(layer, Rescaling) and _rescales_raw_pixels(self.layers):
            self.preprocess.scale = 1.0  # the model rescales itself: feed it raw 0..255 pixels
        if self.input_shape is not None:
            self._build_from(len(self.layers) - 1)

    def pop(self) -> nn.Module:
        """Keras's ``pop()``: remove the last layer and return it."""
        if not len(self.layers):
            raise ValueError(f"model '{self.name}' has no layers to pop")
        layer = self.layers[-1]
        del self.layers[-1]
        self.__dict__.pop("_symbolic_graph", None)
        del self.output_shapes[len(self.layers):]
        return layer

    def _unique_name(self, base: str) -> str:
        n = self._name_counts.get(base, 0)
        self._name_counts[base] = n + 1
        return base if n == 0 else f"{base}_{n}"

    def _build_from(self, start: int) -> None:
        shape = keras_to_torch_shape(self.input_shape) if start == 0 else self.output_shapes[start - 1]
        del self.output_shapes[start:]
        for layer in list(self.layers)[start:]:
            shape = self._build_layer(layer, shape)
            self.output_shapes.append(shape)
        if self.device is not None:
            self.to(self.device)

    @staticmethod
    def _build_layer(layer: nn.Module, shape: tuple) -> tuple:
        if isinstance(layer, Layer):
            if not layer.built:
                layer.build(shape)
            elif layer.input_shape_ != tuple(shape):
                raise ShapeError(f"layer '{layer.name}' ({type(layer).__name__}) was built for input "
                                 f"{keras_shape(layer.input_shape_)} but now gets {keras_shape(shape)}")
            return tuple(layer.compute_output_shape(shape))
        if hasattr(layer, "compute_output_shape"):
            return tuple(layer.compute_output_shape(shape))
        was = layer.training
        layer.eval()
        with torch.no_grad():
            try:
                out = layer(torch.zeros((1, *shape)))
            except RuntimeError as err:
                raise ShapeError(f"layer '{layer.name}' ({type(layer).__name__}) cannot take input "
                                 f"{keras_shape(shape)}: {err}") from err
        layer.train(was)
        return tuple(out.shape[1:])

    def _set_input_shape(self, torch_shape: tuple) -> None:
        super()._set_input_shape(torch_shape)
        if len(self.layers):
            self._build_from(0)

    @property
    def built(self) -> bool:
        return self.input_shape is not None and len(self.output_shapes) == len(self.layers)

    def build(self, input_shape=None) -> None:
        """Keras's ``build((None, H, W, C))``: declare the input shape after the fact."""
        if input_shape is not None:
            shape = tuple(input_shape)
            self.input_shape = shape[1:] if shape and shape[0] is None else shape
        if self.input_shape is None:
            raise ValueError("Sequential.build needs an input shape: build((None, H, W, C))")
        self._build_from(0)

    # -- running ---------------------------------------------------------------------
    def _require_built(self):
        if not self.built:
            raise ValueError(f"model '{self.name}' has no input shape yet: give the first layer "
                             "input_shape=(H, W, C), start with Input((H, W, C)), or call fit first")

    def call(self, x):
        return self._run(list(self.layers), x)

    def _run(self, layers, x):
        i = 0
        while i < len(layers):
            layer = layers[i]
            if i + 1 < len(layers) and _pool_before_relu(layer, layers[i + 1]):
                # relu(maxpool(z)) == maxpool(relu(z)), values and gradients alike, and the
                # ReLU then touches a quarter of the pixels: the tutorials' conv-relu-pool
                # blocks run faster. Skipped when hooks watch the conv (Grad-CAM).
                pool = layers[i + 1]
                z = layer.policy_pre_activation(x)
                if self.jit_compile and kernels.supports(z, pool.pool_size, pool.strides,
                                                         pool.padding):
                    x = kernels.max_pool2x2_relu(z)
                else:
                    x = F.relu(pool(z))
                i += 2
                continue
            x = layer(x)
            i += 1
        return x

    def forward_logits(self, x):
        """The output before the last layer's softmax/sigmoid (for a stable loss)."""
        x = self.preprocess(x)
        x = self._run(list(self.layers)[:-1], x)
        last = self.layers[-1]
        return last.policy_pre_activation(x) if isinstance(last, Layer) else last(x)

    @property
    def output_activation(self):
        if not len(self.layers):
            return None
        act = getattr(self.layers[-1], "activation_name", None)
        return act if act in ("softmax", "sigmoid") else None

    @property
    def output_kind(self):
        if self.output_activation:
            return "probabilities"
        loss = getattr(self, "loss", None)
        if loss is not None and loss.name in ("mse", "mae"):
            return "raw"
        return "logits"

    @output_kind.setter
    def output_kind(self, value):
        pass  # derived from the layers; Model.__init__ assigns it

    @property
    def output_shape(self):
        self._require_built()
        return self.output_shapes[-1] if self.output_shapes else self.torch_input_shape

    def _num_outputs(self):
        """From the shapes inferred layer by layer: no forward pass."""
        if not self.built:
            return None
        shape = self.output_shape
        return shape[-1] if shape else None

    def feature_layer(self):
        convs = [layer for layer in self.layers if hasattr(layer, "conv")]
        return convs[-1] if convs else None

    # -- config ----------------------------------------------------------------------
    def get_config(self) -> dict:
        layers = []
        for layer in self.layers:
            if not hasattr(layer, "get_config"):
                raise TypeError(f"layer '{layer.name}' ({type(layer).__name__}) has no get_config(); "
                                "a Sequential can only be saved whole when every layer is a cnnkit "
                                "layer. Save weights with save_weights() instead")
            layers.append({"class_name": type(layer).__name__, "config": layer.get_config()})
        return {"name": self.name, "input_shape": list(self.input_shape) if self.input_shape else None,
                "layers": layers}

    @classmethod
    def from_config(cls, config: dict) -> "Sequential":
        from ..layers import Input, layer_from_config
        layers = [Input(tuple(config["input_shape"]))] if config.get("input_shape") else []
        layers += [layer_from_config(spec["class_name"], spec["config"]) for spec in config["layers"]]
        return cls(layers, name=config.get("name"))
