"""Seed 002, Example 1: a one-conv CNN on MNIST with validation_split=0.2, in cnnkit.

The training files in ../shared/datasets/mnist are split: the last 10,000 images are held out
as the test set (the canonical test files are not there).

    python examples/seed002_mnist.py [--epochs 10]
"""

import time

import cnnkit
from cnnkit.layers import Conv2D, Dense, Flatten, MaxPooling2D
from _common import parse_args

args = parse_args(__doc__, epochs=10)
cnnkit.utils.set_random_seed(0)

x, y = cnnkit.datasets.load("mnist", path=args.data / "mnist", split="train")
x_train, y_train, x_test, y_test = x[:50000], y[:50000], x[50000:], y[50000:]
if args.limit:
    x_train, y_train = x_train[:args.limit], y_train[:args.limit]
x_train = x_train.astype("float32") / 255.0
x_test = x_test.astype("float32") / 255.0
x_train = x_train.reshape(-1, 28, 28, 1)
x_test = x_test.reshape(-1, 28, 28, 1)
y_train = cnnkit.utils.to_categorical(y_train, num_classes=10)
y_test = cnnkit.utils.to_categorical(y_test, num_classes=10)

model = cnnkit.Sequential([
    Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
    MaxPooling2D((2, 2)),
    Flatten(),
    Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
start = time.perf_counter()
model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, validation_split=0.2)
seconds = time.perf_counter() - start

loss, accuracy = model.evaluate(x_test, y_test)
print(f"Test Loss: {loss:.4f}")
print(f"Test Accuracy: {accuracy:.4f}")
print(f"time per epoch: {seconds / args.epochs:.1f}s")
