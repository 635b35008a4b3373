"""The Keras blog's "Building powerful image classification models using very little data"
(ImageDataGenerator.flow_from_directory), with the imports changed to cnnkit.

Changed beyond the imports: the data (CIFAR-10's cat and dog JPEGs from the shared folder,
linked into train/ and validation/ class folders), 32×32 targets, fewer epochs.

    python examples/keras_flow_from_directory.py --epochs 5 --limit 1000
"""

import os

import cnnkit as keras  # noqa: F401 (the tutorial's `import keras`)
from cnnkit.layers import Activation, Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from cnnkit.models import Sequential
from cnnkit.preprocessing.image import ImageDataGenerator
from _common import parse_args

args = parse_args(__doc__.splitlines()[0], epochs=5)
per_class = args.limit or 1000
n_train = per_class * 4 // 5
source = args.data / "cifar10-jpeg" / "train"
base = args.out / f"catdog_{per_class}"
for name in ("cat", "dog"):
    files = sorted(os.listdir(source / name))[:per_class]
    for split, part in (("train", files[:n_train]), ("validation", files[n_train:])):
        (base / split / name).mkdir(parents=True, exist_ok=True)
        for f in part:
            if not (base / split / name / f).exists():
                os.symlink(source / name / f, base / split / name / f)

# ---- the tutorial -------------------------------------------------------------------------
img_width, img_height = 32, 32
train_data_dir = str(base / "train")
validation_data_dir = str(base / "validation")
epochs = args.epochs
batch_size = 16
input_shape = (img_width, img_height, 3)

model = Sequential()
model.add(Conv2D(32, (3, 3), input_shape=input_shape))
model.add(Activation('relu'))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Conv2D(32, (3, 3)))
model.add(Activation('relu'))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Conv2D(64, (3, 3)))
model.add(Activation('relu'))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Flatten())
model.add(Dense(64))
model.add(Activation('relu'))
model.add(Dropout(0.5))
model.add(Dense(1))
model.add(Activation('sigmoid'))
model.compile(loss='binary_crossentropy', optimizer='rmsprop', metrics=['accuracy'])

train_datagen = ImageDataGenerator(rescale=1. / 255, shear_range=0.2, zoom_range=0.2,
                                   horizontal_flip=True)
test_datagen = ImageDataGenerator(rescale=1. / 255)
train_generator = train_datagen.flow_from_directory(
    train_data_dir, target_size=(img_width, img_height), batch_size=batch_size,
    class_mode='binary')
validation_generator = test_datagen.flow_from_directory(
    validation_data_dir, target_size=(img_width, img_height), batch_size=batch_size,
    class_mode='binary')
# The tutorial also passes steps_per_epoch=nb_train_samples // batch_size and
# validation_steps=nb_validation_samples // batch_size (whole epochs here): fit's arguments.
history = model.fit(train_generator, epochs=epochs, validation_data=validation_generator)
print(f"Validation accuracy: {history.history['val_accuracy'][-1]:.4f}")
