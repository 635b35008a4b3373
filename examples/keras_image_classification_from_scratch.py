"""Keras's "Image classification from scratch" example
(keras.io/examples/vision/image_classification_from_scratch/) on cnnkit, on CIFAR-10.

The Keras code with only the imports changed (``from tensorflow import keras`` ->
``import cnnkit as keras``, ``from tensorflow.keras import layers`` -> ``from cnnkit import
layers``), and the data it is given: the Cats vs Dogs download becomes the CIFAR-10 training
folder in ../shared/datasets/cifar10-jpeg/train (10 classes, 32x32 images; the validation
subset, 20% chosen by Keras's seeded split, is the held-out set), so ``image_size`` is
(32, 32), ``num_classes`` is 10 (a softmax head, as ``make_model`` picks) and the loss is
``sparse_categorical_crossentropy`` for the integer labels; ``epochs`` comes from the
command line (the original trains 25 epochs on a GPU). ``tf.data.AUTOTUNE`` is left out of
``map`` / ``prefetch`` (cnnkit batches in memory; there is nothing to tune).

    python examples/keras_image_classification_from_scratch.py [--epochs 5] [--limit N]

``--limit N`` (a short run) trains on N images and validates on as many (whole batches).
"""

import numpy as np

import cnnkit as keras
from cnnkit import layers
from _common import parse_args

args = parse_args(__doc__, epochs=5)
keras.utils.set_random_seed(1337)

"""
## Generate a `Dataset`
"""

image_size = (32, 32)
batch_size = 128

train_ds, val_ds = keras.utils.image_dataset_from_directory(
    args.data / "cifar10-jpeg" / "train",
    validation_split=0.2,
    subset="both",
    seed=1337,
    image_size=image_size,
    batch_size=batch_size,
)
val_files, class_names = val_ds.file_paths, val_ds.class_names
if args.limit:  # a short run: as many validation batches as training ones
    train_ds = train_ds.take(max(1, args.limit // batch_size))
    val_ds = val_ds.take(max(1, args.limit // batch_size))

"""
## Using image data augmentation
"""

data_augmentation = keras.Sequential(
    [
        layers.RandomFlip("horizontal"),
        layers.RandomRotation(0.1),
    ]
)

"""
## Build a model
"""


def make_model(input_shape, num_classes):
    inputs = keras.Input(shape=input_shape)

    # Entry block
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Conv2D(32, 3, strides=2, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)

    x = layers.Conv2D(64, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)

    previous_block_activation = x  # Set aside residual

    for size in [128, 256, 512, 728]:
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)

        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)

        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)

        # Project residual
        residual = layers.Conv2D(size, 1, strides=2, padding="same")(
            previous_block_activation
        )
        x = layers.add([x, residual])  # Add back residual
        previous_block_activation = x  # Set aside next residual

    x = layers.SeparableConv2D(1024, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)

    x = layers.GlobalAveragePooling2D()(x)
    if num_classes == 2:
        activation = "sigmoid"
        units = 1
    else:
        activation = "softmax"
        units = num_classes

    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(units, activation=activation)(x)
    return keras.Model(inputs, outputs)


model = make_model(input_shape=image_size + (3,), num_classes=10)
keras.utils.plot_model(model, to_file=str(args.out / "model.png"), show_shapes=True)

# Apply `data_augmentation` to the training images.
train_ds = train_ds.map(
    lambda img, label: (data_augmentation(img), label),
)
# Prefetching samples in GPU memory helps maximize GPU utilization.
train_ds = train_ds.prefetch(32)

"""
## Train the model
"""

epochs = args.epochs

callbacks = [
    keras.callbacks.ModelCheckpoint(str(args.out / "save_at_{epoch}.keras")),
]
model.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    loss="sparse_categorical_crossentropy",
    metrics=["accuracy"],
    jit_compile=True,  # Enable XLA compilation for faster execution
)
model.fit(
    train_ds,
    epochs=epochs,
    callbacks=callbacks,
    validation_data=val_ds,
)

loss, accuracy = model.evaluate(val_ds)
print(f"Held-out accuracy: {accuracy:.4f}")

"""
## Run inference on new data
"""

first = val_files[0]
img = keras.preprocessing.image.load_img(first, target_size=image_size)
img_array = keras.preprocessing.image.img_to_array(img)
img_array = np.expand_dims(img_array, 0)  # Create batch axis

predictions = model.predict(img_array)
score = predictions[0]
print(f"{first}: {class_names[int(np.argmax(score))]} ({100 * float(np.max(score)):.2f}%)")
