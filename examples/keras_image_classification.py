"""TensorFlow's "Image classification" tutorial (tensorflow.org/tutorials/images/classification,
the flowers one) in Keras 3 spelling, with the imports changed to cnnkit.

Changed beyond the imports: the data (four classes of the shared CIFAR-10 JPEGs instead of the
flowers photos, linked into a class-folder tree), 32×32 images instead of 180×180, fewer
epochs, no plots, and numpy's expand_dims for ``tf.expand_dims`` (cnnkit's ``predict`` gives
probabilities, so the tutorial's ``tf.nn.softmax`` is left out).

    python examples/keras_image_classification.py --epochs 4 --limit 700
"""

import os

import numpy as np

import cnnkit as keras
from cnnkit import data as tf_data  # from tensorflow import data as tf_data
from cnnkit import layers
from _common import parse_args

args = parse_args(__doc__.splitlines()[0], epochs=4)
per_class = args.limit or 700
source = args.data / "cifar10-jpeg" / "train"
data_dir = args.out / f"cifar4_{per_class}"
for name in ("airplane", "automobile", "cat", "frog"):  # a small class-folder tree of links
    (data_dir / name).mkdir(parents=True, exist_ok=True)
    for f in sorted(os.listdir(source / name))[:per_class]:
        if not (data_dir / name / f).exists():
            os.symlink(source / name / f, data_dir / name / f)

# ---- the tutorial -------------------------------------------------------------------------
batch_size = 32
img_height = 32
img_width = 32
train_ds = keras.utils.image_dataset_from_directory(
    data_dir, validation_split=0.2, subset="training", seed=123,
    image_size=(img_height, img_width), batch_size=batch_size)
val_ds = keras.utils.image_dataset_from_directory(
    data_dir, validation_split=0.2, subset="validation", seed=123,
    image_size=(img_height, img_width), batch_size=batch_size)
class_names = train_ds.class_names
print(class_names)
for image_batch, labels_batch in train_ds:
    print(image_batch.shape)
    print(labels_batch.shape)
    break

AUTOTUNE = tf_data.AUTOTUNE
train_ds = train_ds.cache().shuffle(1000).prefetch(buffer_size=AUTOTUNE)
val_ds = val_ds.cache().prefetch(buffer_size=AUTOTUNE)

normalization_layer = layers.Rescaling(1. / 255)
normalized_ds = train_ds.map(lambda x, y: (normalization_layer(x), y))
image_batch, labels_batch = next(iter(normalized_ds))
first_image = image_batch[0]
print(np.min(first_image), np.max(first_image))

num_classes = len(class_names)
data_augmentation = keras.Sequential([
    layers.Input((img_height, img_width, 3)),
    layers.RandomFlip("horizontal"),
    layers.RandomRotation(0.1),
    layers.RandomZoom(0.1),
])
model = keras.Sequential([
    data_augmentation,
    layers.Rescaling(1. / 255),
    layers.Conv2D(16, 3, padding='same', activation='relu'),
    layers.MaxPooling2D(),
    layers.Conv2D(32, 3, padding='same', activation='relu'),
    layers.MaxPooling2D(),
    layers.Conv2D(64, 3, padding='same', activation='relu'),
    layers.MaxPooling2D(),
    layers.Dropout(0.2),
    layers.Flatten(),
    layers.Dense(128, activation='relu'),
    layers.Dense(num_classes, name="outputs"),
])
model.compile(optimizer='adam',
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=['accuracy'])
history = model.fit(train_ds, validation_data=val_ds, epochs=args.epochs)
print(f"Validation accuracy: {history.history['val_accuracy'][-1]:.4f}")

path = source / "frog" / sorted(os.listdir(source / "frog"))[-1]  # not among the linked ones
img = keras.utils.load_img(path, target_size=(img_height, img_width))
img_array = keras.utils.img_to_array(img)
img_array = np.expand_dims(img_array, 0)  # Create a batch
predictions = model.predict(img_array)
score = predictions[0]
print("This image most likely belongs to {} with a {:.2f} percent confidence."
      .format(class_names[np.argmax(score)], 100 * np.max(score)))
