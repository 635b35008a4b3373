"""Keras's ``keras.preprocessing`` names: ``image_dataset_from_directory`` and, in
``cnnkit.preprocessing.image``, ``ImageDataGenerator``, ``load_img``, ``img_to_array``."""

from ..data.keras_folder import image_dataset_from_directory
from . import image

__all__ = ["image_dataset_from_directory", "image"]
