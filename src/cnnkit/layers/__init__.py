"""Keras-named layers (``cnnkit.layers``), one module per family; see ``core`` for the contract.

Adding a layer: write it in the family's module and list it in that module's ``__all__``;
it is then exported here and rebuilt by name from saved configs.
"""

from . import activation_layers, convolutional, merging, normalization, regularization, reshaping
from .activation_layers import *  # noqa: F401,F403
from .convolutional import *  # noqa: F401,F403
from .merging import *  # noqa: F401,F403
from .core import (  # noqa: F401  (re-exported: other modules import these from cnnkit.layers)
    LAYER_CLASSES, Activation, AveragePooling2D, BatchNormalization, Conv2D, Dense, Dropout,
    Flatten, GlobalAveragePooling2D, GlobalMaxPooling2D, Input, InputSpec, Layer, MaxPooling2D,
    RandomBrightness, RandomContrast, RandomFlip, RandomRotation, RandomTranslation, RandomZoom,
    ReLU, Rescaling, ShapeError, _ActivatedLayer, _augmentation_layer, _GlobalPooling2D,
    _glorot_uniform_, _pair, _POLICY_ALIASES, _POLICY_DTYPES, _Pooling2D, _same_padding, _snake,
    default_name, dtype_policy, keras_shape, keras_to_torch_shape, layer_from_config,
)
from .core import __all__ as _core_all
from .normalization import *  # noqa: F401,F403
from .regularization import *  # noqa: F401,F403
from .reshaping import *  # noqa: F401,F403

_FAMILIES = (activation_layers, convolutional, merging, normalization, regularization, reshaping)
__all__ = list(_core_all) + [name for family in _FAMILIES for name in family.__all__]

# saved configs name their class; these are the classes a config may name
LAYER_CLASSES.update({name: obj for family in _FAMILIES for name in family.__all__
                      if isinstance(obj := getattr(family, name), type) and issubclass(obj, Layer)})


def __getattr__(name):  # Keras 3's batch mixers, which mix the labels too: data/mixing.py
    if name in ("MixUp", "CutMix"):
        from ..data import mixing
        return getattr(mixing, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
