"""Seed 001, the Keras part: two conv layers on MNIST, batch 128, 10 epochs, in cnnkit.

    python examples/seed001_mnist_two_conv.py [--epochs 10]
"""

import time

import cnnkit
from cnnkit.layers import Conv2D, Dense, Flatten, MaxPooling2D
from _common import parse_args

args = parse_args(__doc__, epochs=10)
cnnkit.utils.set_random_seed(0)

x, y = cnnkit.datasets.load("mnist", path=args.data / "mnist", split="train")
X_train, y_train = x[:50000] / 255.0, cnnkit.utils.to_categorical(y[:50000], 10)
X_test, y_test = x[50000:] / 255.0, cnnkit.utils.to_categorical(y[50000:], 10)
if args.limit:
    X_train, y_train = X_train[:args.limit], y_train[:args.limit]

model = cnnkit.Sequential()
model.add(Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Conv2D(64, (3, 3), activation="relu"))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Flatten())
model.add(Dense(128, activation="relu"))
model.add(Dense(10, activation="softmax"))
model.summary()

model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
start = time.perf_counter()
model.fit(X_train, y_train, batch_size=128, epochs=args.epochs, validation_data=(X_test, y_test))
print(f"time per epoch: {(time.perf_counter() - start) / args.epochs:.1f}s")
loss, acc = model.evaluate(X_test, y_test)
print(f"Test accuracy: {acc:.4f}")
