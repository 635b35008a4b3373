"""Record what Keras computes for the tutorial pattern RandomFlip -> Rescaling(1/255) -> Conv2D.

Run with the TensorFlow venv (CI never runs this; the test reads the .npz it writes):

    /work/tfvenv/bin/python scripts/keras_golden/rescaling_after_augmentation.py

Keras feeds the model the raw pixel values (0..255): the flip is inactive at inference and
Rescaling scales once. The recorded output is what cnnkit must give for the same weights and
uint8 pixels.
"""

from pathlib import Path

import numpy as np
import keras
from keras import layers

OUT = Path(__file__).resolve().parents[2] / "tests/golden/keras/trust-checks/rescaling_after_augmentation.npz"

keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input((8, 8, 3)),
    layers.RandomFlip("horizontal"),
    layers.RandomRotation(0.1),
    layers.Rescaling(1.0 / 255),
    layers.Conv2D(4, 3, activation="relu"),
    layers.GlobalAveragePooling2D(),
    layers.Dense(3, activation="softmax"),
])
rng = np.random.default_rng(0)
x = rng.integers(0, 256, size=(4, 8, 8, 3), dtype=np.uint8)
conv_kernel, conv_bias = (w.numpy() for w in model.layers[3].weights)
dense_kernel, dense_bias = (w.numpy() for w in model.layers[5].weights)
probs = model.predict(x.astype("float32"), verbose=0)  # image_dataset_from_directory gives float32 0..255
OUT.parent.mkdir(parents=True, exist_ok=True)
np.savez(OUT, x=x, conv_kernel=conv_kernel, conv_bias=conv_bias, dense_kernel=dense_kernel,
         dense_bias=dense_bias, probs=probs, keras_version=keras.__version__)
print(OUT, probs)
