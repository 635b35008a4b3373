"""Keras's "Simple MNIST convnet" example (keras.io/examples/vision/mnist_convnet/) on cnnkit.

The Keras code with only the imports changed (``from tensorflow import keras`` ->
``import cnnkit as keras``, ``from tensorflow.keras import layers`` -> ``from cnnkit import
layers``), and one data line: ../shared/datasets/mnist holds MNIST's training files only, so
``load_data(path=..., split="train")`` reads them and the last 10,000 digits are held out as
the test set (the canonical test files are not there).

    python examples/keras_mnist_convnet.py [--epochs 15] [--limit N]
"""

import numpy as np

import cnnkit as keras
from cnnkit import layers
from _common import parse_args

args = parse_args(__doc__, epochs=15)
keras.utils.set_random_seed(0)

"""
## Prepare the data
"""

# Model / data parameters
num_classes = 10
input_shape = (28, 28, 1)

# Load the data and split it between train and test sets
x, y = keras.datasets.mnist.load_data(path=args.data / "mnist", split="train")
(x_train, y_train), (x_test, y_test) = (x[:50000], y[:50000]), (x[50000:], y[50000:])
if args.limit:
    x_train, y_train = x_train[:args.limit], y_train[:args.limit]

# Scale images to the [0, 1] range
x_train = x_train.astype("float32") / 255
x_test = x_test.astype("float32") / 255
# Make sure images have shape (28, 28, 1)
x_train = np.expand_dims(x_train, -1)
x_test = np.expand_dims(x_test, -1)
print("x_train shape:", x_train.shape)
print(x_train.shape[0], "train samples")
print(x_test.shape[0], "test samples")


# convert class vectors to binary class matrices
y_train = keras.utils.to_categorical(y_train, num_classes)
y_test = keras.utils.to_categorical(y_test, num_classes)

"""
## Build the model
"""

model = keras.Sequential(
    [
        keras.Input(shape=input_shape),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ]
)

model.summary()

"""
## Train the model
"""

batch_size = 128
epochs = args.epochs

model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])

model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, validation_split=0.1)

"""
## Evaluate the trained model
"""

score = model.evaluate(x_test, y_test, verbose=0)
print("Test loss:", score[0])
print("Test accuracy:", score[1])
