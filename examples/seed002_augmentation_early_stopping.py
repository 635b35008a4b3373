"""Seed 002, Example 2 (ImageDataGenerator: rotation, shifts, flips) plus the early stopping the
seed recommends, on MNIST held-out data, in cnnkit. The augmentation runs on whole batches as
tensor ops (no per-image Python); the same code as the tutorial drives it.

    python examples/seed002_augmentation_early_stopping.py [--epochs 10]
"""

import cnnkit
from cnnkit.callbacks import EarlyStopping
from cnnkit.data.image_generator import ImageDataGenerator
from cnnkit.layers import Conv2D, Dense, Flatten, MaxPooling2D
from _common import parse_args

args = parse_args(__doc__, epochs=10)
cnnkit.utils.set_random_seed(0)

x, y = cnnkit.datasets.load("mnist", path=args.data / "mnist", split="train")
x_train, y_train, x_test, y_test = x[:50000], y[:50000], x[50000:], y[50000:]
if args.limit:
    x_train, y_train = x_train[:args.limit], y_train[:args.limit]
y_train = cnnkit.utils.to_categorical(y_train, num_classes=10)
y_test = cnnkit.utils.to_categorical(y_test, num_classes=10)

# Create data augmentation generator (the tutorial's arguments; a horizontal flip is a poor
# fit for digits, kept here because the tutorial uses it)
datagen = ImageDataGenerator(rotation_range=20, width_shift_range=0.2, height_shift_range=0.2,
                             horizontal_flip=True)

model = cnnkit.Sequential([
    Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
    MaxPooling2D((2, 2)),
    Flatten(),
    Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])

datagen.fit(x_train)
history = model.fit(datagen.flow(x_train, y_train, batch_size=32), epochs=args.epochs,
                    validation_data=(x_test, y_test),
                    callbacks=[EarlyStopping(monitor="val_loss", patience=2,
                                             restore_best_weights=True, verbose=1)])
loss, accuracy = model.evaluate(x_test, y_test)
print(f"Test Accuracy: {accuracy:.4f} after {len(history.epoch)} epochs")
