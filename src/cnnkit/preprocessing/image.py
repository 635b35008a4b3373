"""``keras.preprocessing.image``: ``ImageDataGenerator`` (with ``flow`` and
``flow_from_directory``), ``load_img``, ``img_to_array``, ``array_to_img``, ``smart_resize``."""

from ..data.image_generator import DataFlow, ImageDataGenerator
from ..data.keras_image import array_to_img, img_to_array, load_img, smart_resize

__all__ = ["ImageDataGenerator", "DataFlow", "load_img", "img_to_array", "array_to_img",
           "smart_resize"]
