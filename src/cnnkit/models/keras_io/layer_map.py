"""One table: Keras layer class name -> how to build the cnnkit layer and convert its weights.

Each :class:`Converter` knows, for one Keras class:

- ``build(config)``: the cnnkit layer from the Keras config (raise ``Unsupported`` for an
  argument cnnkit cannot honour; the reader names the layer and the reason);
- ``load(layer, arrays, order)`` / ``dump(layer, order)``: the layer's weights from / to
  Keras's arrays in Keras's order and layouts;
- ``keras_config(layer)``: the Keras 3 config the writer puts in ``config.json``.

``order`` is the Flatten order of a feature vector: Keras flattens (H, W, C), cnnkit's
NCHW flattens (C, H, W), so after a ``Flatten`` cnnkit's feature ``i`` is Keras's feature
``order[i]`` (None: same order). Layers with ``order="keep"`` pass it on (Dropout, ...);
``Dense`` and ``BatchNormalization`` permute their weights by it. Any other layer meeting a
pending order is refused, naming it.

A new layer plugs in with one ``register("ClassName", Converter(...))`` call.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from ... import layers as L
from ...data import augment_layers as A

Arrays = list  # list[np.ndarray], Keras's order and layout


class Unsupported(ValueError):
    """A Keras argument cnnkit cannot honour; the text says which."""


@dataclass(frozen=True)
class Converter:
    build: Callable[[dict], nn.Module]
    keras_config: Callable[[nn.Module], dict]
    load: Callable | None = None  # (layer, arrays, order) -> None
    dump: Callable | None = None  # (layer, order) -> arrays
    # the Flatten order (see above): "keep" passes it on, "consume" (Dense) reads it and
    # outputs Keras's order, "flatten" starts one, "merge" needs its inputs to agree,
    # "none" refuses a pending one
    order: str = "none"
    build_config: bool = True  # Keras records the input shape of layers that build weights


KERAS_LAYERS: dict[str, Converter] = {}
# Classes refused outright, with the reason (they would need code from the file to run).
REFUSED = {
    "Lambda": "a Lambda layer holds Python code, which cnnkit refuses to run from a file; "
              "rewrite it as a built-in layer before saving",
    "TFOpLambda": "a TensorFlow op stored as code, which cnnkit refuses to run from a file",
    "SlicingOpLambda": "a TensorFlow op stored as code, which cnnkit refuses to run from a file",
}


def register(class_name: str, converter: Converter) -> None:
    """Teach the Keras file reader and writer one more layer class."""
    KERAS_LAYERS[class_name] = converter


def converter_named(class_name: str) -> Converter | None:
    """The table's entry, else one made from a cnnkit layer of that name that takes Keras's
    arguments and lists its weights in Keras's layout (``get_weights`` / ``set_weights``)."""
    if class_name in KERAS_LAYERS:
        return KERAS_LAYERS[class_name]
    cls = getattr(L, "LAYER_CLASSES", {}).get(class_name)
    if cls is None or not callable(getattr(cls, "keras_weights", None)):
        return None
    return _generic(cls)


def keras_class_name(layer: nn.Module) -> str:
    return type(layer).__name__


# -- Keras config helpers -------------------------------------------------------------
POLICY = {"float32": None, "mixed_bfloat16": "mixed_bfloat16", "mixed_float16": "mixed_float16"}


def _policy_name(cfg: dict) -> str:
    dtype = cfg.get("dtype") or "float32"
    if isinstance(dtype, dict):  # Keras 3: a DTypePolicy object
        dtype = dtype.get("config", {}).get("name", "float32")
    return str(dtype)


def common(cfg: dict) -> dict:
    """name / trainable / dtype policy, Keras config -> cnnkit kwargs."""
    policy = _policy_name(cfg)
    if policy not in POLICY:
        raise Unsupported(f"dtype policy {policy!r} (cnnkit layers take {', '.join(POLICY)})")
    kwargs = {"name": cfg.get("name")}
    if cfg.get("trainable") is False:
        kwargs["trainable"] = False
    if POLICY[policy]:
        kwargs["dtype"] = POLICY[policy]
    return kwargs


def require(cfg: dict, key: str, allowed: tuple, default=None) -> None:
    value = cfg.get(key, default)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if value not in allowed:
        raise Unsupported(f"{key}={value!r} (cnnkit supports {', '.join(map(repr, allowed))})")


def channels_last(cfg: dict) -> None:
    require(cfg, "data_format", ("channels_last", None))


def activation(cfg: dict) -> str | None:
    act = cfg.get("activation")
    if isinstance(act, dict):  # a serialized activation object
        act = act.get("config", {}).get("name") or act.get("class_name")
    if act in (None, "linear"):
        return None
    from ... import activations
    if str(act).lower() not in activations.NAMES:
        raise Unsupported(f"activation {act!r}")
    return str(act)


OPTION_KINDS = ("regularizer", "constraint")


def weight_options(cls, cfg: dict) -> dict:
    """Keras's ``kernel_regularizer`` / ``bias_constraint`` / ... (saved as class name + config)
    for a cnnkit layer class that takes them (``cls.weight_options`` lists its weights);
    the reader warns about those it had to drop. Initializers are moot: weights are loaded."""
    takes = set(getattr(cls, "weight_options", ()))
    out = {}
    for key, value in cfg.items():
        prefix, _, kind = key.rpartition("_")
        if value is not None and kind in OPTION_KINDS and prefix in takes:
            out[key] = value
    if cfg.get("activity_regularizer") is not None and \
            "activity_regularizer" in inspect.signature(cls).parameters:
        out["activity_regularizer"] = cfg["activity_regularizer"]
    return out


def options_config(layer) -> dict:
    """The layer's own regularizers / constraints (as cnnkit's get_config names them) in
    Keras's serialized form, for the writer; {} for layers that have none."""
    out = {}
    for key, value in layer.get_config().items():
        kind = key.rpartition("_")[2]
        if kind in OPTION_KINDS and isinstance(value, dict) and "class_name" in value:
            out[key] = {"module": f"keras.{kind}s", "class_name": value["class_name"],
                        "config": value.get("config", {}), "registered_name": None}
    return out


def policy_config(layer) -> dict:
    name = getattr(layer, "dtype_policy", None) or "float32"
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name},
            "registered_name": None}


def base_config(layer) -> dict:
    return {"name": layer.name, "trainable": bool(getattr(layer, "_trainable", True)),
            "dtype": policy_config(layer)}


def initializer(class_name: str, **config) -> dict:
    return {"module": "keras.initializers", "class_name": class_name, "config": config,
            "registered_name": None}


GLOROT = initializer("GlorotUniform", seed=None, input_axes=None, output_axes=None)
ZEROS = initializer("Zeros")
ONES = initializer("Ones")
NO_REGULARIZERS = {"kernel_regularizer": None, "bias_regularizer": None,
                   "kernel_constraint": None, "bias_constraint": None}


def t(array) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float32)


def n(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().float().numpy().copy()


def set_(param: torch.Tensor, value: torch.Tensor, what: str) -> None:
    if tuple(param.shape) != tuple(value.shape):
        raise Unsupported(f"{what} has shape {tuple(value.shape)} in the file but "
                          f"{tuple(param.shape)} in the model")
    with torch.no_grad():
        param.copy_(value)


def expect(arrays: Arrays, count: int, what: str) -> None:
    if len(arrays) != count:
        raise Unsupported(f"the file holds {len(arrays)} weight arrays, {what} needs {count}")


# -- Conv2D ---------------------------------------------------------------------------
def _conv_build(cfg):
    channels_last(cfg)
    groups = {}
    if cfg.get("groups", 1) != 1:
        if "groups" not in inspect.signature(L.Conv2D).parameters:
            raise Unsupported(f"groups={cfg['groups']} (this cnnkit's Conv2D has no groups)")
        groups = {"groups": int(cfg["groups"])}
    return L.Conv2D(cfg["filters"], cfg["kernel_size"], strides=cfg.get("strides", 1),
                    padding=str(cfg.get("padding", "valid")).lower(), activation=activation(cfg),
                    use_bias=cfg.get("use_bias", True), dilation_rate=cfg.get("dilation_rate", 1),
                    **groups, **common(cfg), **weight_options(L.Conv2D, cfg))


def _conv_load(layer, arrays, order):
    expect(arrays, 2 if layer.use_bias else 1, "Conv2D")
    # Keras (kh, kw, in, out) -> torch (out, in, kh, kw)
    set_(layer.conv.weight, t(arrays[0]).permute(3, 2, 0, 1), "Conv2D kernel")
    if layer.use_bias:
        set_(layer.conv.bias, t(arrays[1]), "Conv2D bias")


def _conv_dump(layer, order):
    out = [n(layer.conv.weight.permute(2, 3, 1, 0))]
    return out + ([n(layer.conv.bias)] if layer.use_bias else [])


def _conv_config(layer):
    return {**base_config(layer), "filters": layer.filters, "kernel_size": list(layer.kernel_size),
            "strides": list(layer.strides), "padding": layer.padding,
            "data_format": "channels_last", "dilation_rate": list(layer.dilation_rate),
            "groups": getattr(layer, "groups", 1), "activation": layer.activation_name or "linear",
            "use_bias": layer.use_bias, "kernel_initializer": GLOROT, "bias_initializer": ZEROS,
            **NO_REGULARIZERS, "activity_regularizer": None, **options_config(layer)}


register("Conv2D", Converter(_conv_build, _conv_config, _conv_load, _conv_dump))


# -- Dense ----------------------------------------------------------------------------
def _dense_build(cfg):
    return L.Dense(cfg["units"], activation=activation(cfg), use_bias=cfg.get("use_bias", True),
                   **common(cfg), **weight_options(L.Dense, cfg))


def _dense_load(layer, arrays, order):
    expect(arrays, 2 if layer.use_bias else 1, "Dense")
    kernel = arrays[0]  # Keras (in, out)
    want = (layer.linear.in_features, layer.units)
    if tuple(kernel.shape) != want:
        raise Unsupported(f"Dense kernel has shape {tuple(kernel.shape)} in the file but {want} in the model")
    if order is not None:
        kernel = kernel[order]  # rows into cnnkit's (C, H, W) flatten order
    set_(layer.linear.weight, t(kernel).T, "Dense kernel")
    if layer.use_bias:
        set_(layer.linear.bias, t(arrays[1]), "Dense bias")


def _dense_dump(layer, order):
    weight = n(layer.linear.weight).T  # (in, out), cnnkit's feature order
    if order is not None:
        kernel = np.empty_like(weight)
        kernel[order] = weight
        weight = kernel
    return [weight] + ([n(layer.linear.bias)] if layer.use_bias else [])


def _dense_config(layer):
    return {**base_config(layer), "units": layer.units, "activation": layer.activation_name or "linear",
            "use_bias": layer.use_bias, "kernel_initializer": GLOROT, "bias_initializer": ZEROS,
            **NO_REGULARIZERS, "quantization_config": None, **options_config(layer)}


register("Dense", Converter(_dense_build, _dense_config, _dense_load, _dense_dump, order="consume"))


# -- BatchNormalization ------------------------------------------------------------------
def _bn_build(cfg):
    require(cfg, "axis", (-1, 3, 1), -1)  # the channel (last) axis; checked against rank below
    for flag in ("renorm", "synchronized"):
        if cfg.get(flag):
            raise Unsupported(f"{flag}=True")
    layer = L.BatchNormalization(momentum=cfg.get("momentum", 0.99), epsilon=cfg.get("epsilon", 1e-3),
                                 center=cfg.get("center", True), scale=cfg.get("scale", True),
                                 **common(cfg), **weight_options(L.BatchNormalization, cfg))
    layer.keras_axis = cfg.get("axis", -1)
    return layer


def _bn_load(layer, arrays, order):
    axis = getattr(layer, "keras_axis", -1)
    axis = axis[0] if isinstance(axis, list) else axis
    rank = len(layer.input_shape_) + 1
    if axis not in (-1, rank - 1):
        raise Unsupported(f"axis={axis} on a rank-{rank} input (cnnkit normalises the channel axis)")
    expect(arrays, 2 + layer.scale + layer.center, "BatchNormalization")
    if any(a.shape != (layer.bn.num_features,) for a in arrays):
        raise Unsupported(f"BatchNormalization arrays have shapes {[a.shape for a in arrays]} in the "
                          f"file but ({layer.bn.num_features},) in the model")
    arrays = [a[order] if order is not None else a for a in arrays]
    names = (["gamma"] if layer.scale else []) + (["beta"] if layer.center else []) + \
        ["moving_mean", "moving_variance"]
    target = {"gamma": layer.bn.weight, "beta": layer.bn.bias,
              "moving_mean": layer.bn.running_mean, "moving_variance": layer.bn.running_var}
    for name, value in zip(names, arrays):
        set_(target[name], t(value), f"BatchNormalization {name}")


def _bn_dump(layer, order):
    values = ([layer.bn.weight] if layer.scale else []) + ([layer.bn.bias] if layer.center else []) + \
        [layer.bn.running_mean, layer.bn.running_var]
    out = []
    for v in values:
        v = n(v)
        if order is not None:
            keras = np.empty_like(v)
            keras[order] = v
            v = keras
        out.append(v)
    return out


def _bn_config(layer):
    return {**base_config(layer), "axis": -1, "momentum": layer.momentum, "epsilon": layer.epsilon,
            "center": layer.center, "scale": layer.scale, "beta_initializer": ZEROS,
            "gamma_initializer": ONES, "moving_mean_initializer": ZEROS,
            "moving_variance_initializer": ONES, "beta_regularizer": None, "gamma_regularizer": None,
            "beta_constraint": None, "gamma_constraint": None, "synchronized": False,
            "renorm": False, "renorm_clipping": None, "renorm_momentum": 0.99, **options_config(layer)}


register("BatchNormalization", Converter(_bn_build, _bn_config, _bn_load, _bn_dump, order="keep"))


# -- layers without weights -------------------------------------------------------------
def _pool(cls):
    def build(cfg):
        channels_last(cfg)
        return cls(cfg.get("pool_size", 2), strides=cfg.get("strides"),
                   padding=str(cfg.get("padding", "valid")).lower(), **common(cfg))

    def config(layer):
        return {**base_config(layer), "pool_size": list(layer.pool_size), "padding": layer.padding,
                "strides": list(layer.strides), "data_format": "channels_last"}
    return Converter(build, config, build_config=False)


def _global_pool(cls):
    def build(cfg):
        channels_last(cfg)
        return cls(keepdims=cfg.get("keepdims", False), **common(cfg))

    def config(layer):
        return {**base_config(layer), "data_format": "channels_last", "keepdims": layer.keepdims}
    return Converter(build, config, build_config=False)


def _flatten_build(cfg):
    channels_last(cfg)
    return L.Flatten(**common(cfg))


def _dropout_build(cfg):
    takes = inspect.signature(L.Dropout).parameters
    extra = {k: cfg[k] for k in ("noise_shape", "seed") if cfg.get(k) is not None and k in takes}
    if cfg.get("noise_shape") is not None and "noise_shape" not in extra:
        raise Unsupported(f"noise_shape={cfg['noise_shape']} (this cnnkit's Dropout has none)")
    return L.Dropout(cfg["rate"], **extra, **common(cfg))


def _dropout_config(layer):
    return {**base_config(layer), "rate": layer.rate, "seed": getattr(layer, "seed", None),
            "noise_shape": getattr(layer, "noise_shape", None)}


def _rescaling_build(cfg):
    scale, offset = cfg.get("scale", 1.0), cfg.get("offset", 0.0)
    if isinstance(scale, (list, dict)) or isinstance(offset, (list, dict)):
        raise Unsupported("a per-channel scale or offset")
    return L.Rescaling(scale, offset, **common(cfg))


def _activation_build(cfg):
    act = activation(cfg)
    return L.Activation(act or "linear", **common(cfg))


def _relu_build(cfg):
    return L.ReLU(max_value=cfg.get("max_value"), negative_slope=cfg.get("negative_slope", 0.0),
                  threshold=cfg.get("threshold", 0.0), **common(cfg))


register("MaxPooling2D", _pool(L.MaxPooling2D))
register("AveragePooling2D", _pool(L.AveragePooling2D))
register("GlobalAveragePooling2D", _global_pool(L.GlobalAveragePooling2D))
register("GlobalMaxPooling2D", _global_pool(L.GlobalMaxPooling2D))
register("Flatten", Converter(_flatten_build, lambda layer: {**base_config(layer),
                                                               "data_format": "channels_last"},
                              order="flatten"))
register("Dropout", Converter(_dropout_build, _dropout_config, order="keep", build_config=False))
register("Rescaling", Converter(_rescaling_build, lambda layer: {
    **base_config(layer), "scale": layer.scale, "offset": layer.offset}, order="keep"))
register("Activation", Converter(_activation_build, lambda layer: {
    **base_config(layer), "activation": layer.activation_name or "linear"}, order="keep", build_config=False))
register("ReLU", Converter(_relu_build, lambda layer: {
    **base_config(layer), "max_value": layer.max_value, "negative_slope": layer.negative_slope,
    "threshold": layer.threshold}, order="keep", build_config=False))


# -- augmentation layers: random in training, identity at inference -------------------------
def _augmentation(cls):
    accepted = set(inspect.signature(cls).parameters) - {"name", "value_range"}

    def build(cfg):
        channels_last(cfg)
        # value_range is dropped: cnnkit's engine feeds augmentation floats in [0, 1]
        return cls(name=cfg.get("name"), **{k: v for k, v in cfg.items() if k in accepted})

    def config(layer):
        cfg = {k: v for k, v in layer.get_config().items() if k != "name"}
        return {"name": layer.name, "trainable": True, "dtype": policy_config(layer),
                "data_format": "channels_last", **cfg}
    return Converter(build, config)


for _cls in (A.RandomFlip, A.RandomRotation, A.RandomTranslation, A.RandomZoom,
             A.RandomContrast, A.RandomBrightness):
    register(_cls.__name__, _augmentation(_cls))


# -- merge layers (the functional API's; registered where this cnnkit has them) -------------
def _merge(cls):
    def build(cfg):
        kwargs = {"axis": cfg.get("axis", -1)} if cls.__name__ == "Concatenate" else {}
        return cls(**kwargs, **common(cfg))

    def config(layer):
        extra = {"axis": getattr(layer, "axis", -1)} if cls.__name__ == "Concatenate" else {}
        return {**base_config(layer), **extra}
    return Converter(build, config, order="merge", build_config=True)


for _name in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate"):
    if isinstance(getattr(L, _name, None), type):
        register(_name, _merge(getattr(L, _name)))


# -- any other cnnkit layer with Keras-named arguments and Keras-layout weights -------------
SKIPPED_KEYS = ("name", "trainable", "dtype", "data_format")
# Keras 3.15 records no build_config for these weightless layers (it does for ZeroPadding2D...)
NO_BUILD_CONFIG = {"LeakyReLU", "ELU", "Softmax", "Reshape", "SpatialDropout2D"}
# Keras's own config of SpatialDropout2D has no "trainable" (its constructor refuses one)
# and a dtype string rather than a policy
PLAIN_CONFIG = {"SpatialDropout2D"}


def _generic(cls) -> Converter:
    def build(cfg):
        channels_last(cfg)
        kwargs = {k: v for k, v in cfg.items() if k not in SKIPPED_KEYS and v is not None
                  and not k.endswith("_initializer")}  # initial values are moot: weights load
        if kwargs.get("activation") == "linear":
            kwargs["activation"] = None
        return cls(**kwargs, **common(cfg))

    def load(layer, arrays, order):
        try:
            layer.set_weights(arrays)
        except ValueError as err:
            raise Unsupported(str(err)) from err

    def dump(layer, order):
        return [np.asarray(a, dtype="float32") for a in layer.get_weights()]

    def config(layer):
        cfg = {k: v for k, v in layer.get_config().items() if k not in ("name", "trainable", "dtype")}
        if "activation" in cfg and cfg["activation"] is None:
            cfg["activation"] = "linear"
        fmt = {"data_format": "channels_last"} if "data_format" in inspect.signature(cls).parameters else {}
        if cls.__name__ in PLAIN_CONFIG:
            return {"name": layer.name, "dtype": getattr(layer, "dtype_policy", None) or "float32",
                    **fmt, **cfg}
        return {**base_config(layer), **fmt, **cfg}
    return Converter(build, config, load, dump, build_config=cls.__name__ not in NO_BUILD_CONFIG)
