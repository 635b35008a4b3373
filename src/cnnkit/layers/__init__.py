"""Keras-named layers (``cnnkit.layers``), one module per family; see ``core`` for the contract."""

from .core import (  # noqa: F401  (re-exported: other modules import these from cnnkit.layers)
    LAYER_CLASSES, Activation, AveragePooling2D, BatchNormalization, Conv2D, Dense, Dropout,
    Flatten, GlobalAveragePooling2D, GlobalMaxPooling2D, Input, InputSpec, Layer, MaxPooling2D,
    RandomBrightness, RandomContrast, RandomFlip, RandomRotation, RandomTranslation, RandomZoom,
    ReLU, Rescaling, ShapeError, _ActivatedLayer, _augmentation_layer, _GlobalPooling2D,
    _glorot_uniform_, _pair, _POLICY_ALIASES, _POLICY_DTYPES, _Pooling2D, _same_padding, _snake,
    __all__, default_name, dtype_policy, keras_shape, keras_to_torch_shape, layer_from_config,
)
