"""Seed 003: "Implementing Convolutional Neural Networks using Tensorflow", in cnnkit.

CIFAR-10 (the JPEG copy in ../shared/datasets, 20% held out), the simple-cnn of the tutorial,
adam, categorical cross-entropy, 10 epochs of batch 64, the accuracy plot, evaluate, and one
sample prediction drawn as "Actual: cat | Predicted: dog".

    python examples/seed003_cifar10_simple_cnn.py [--epochs 10] [--bf16] [--jit-compile]

``--bf16`` is the speed setting (docs/speed.md): the convolutions compute in bfloat16 and
the Dense layers keep Keras's ``dtype="float32"`` policy (Keras's mixed-precision guide keeps
the output layer in float32 too); over 3 seeds it matched fp32's accuracy here.
``--jit-compile`` is Keras's ``jit_compile=True``: the conv blocks' pooling runs as compiled
kernels (bit-identical results; a few seconds to compile at the first batches).
"""

import time

import numpy as np

import cnnkit
from cnnkit import layers
from _common import parse_args, plot_accuracy

args = parse_args(__doc__, epochs=10, bf16_option=True)
head = "float32" if args.bf16 else None  # per-layer precision policy (Keras dtype=)
cnnkit.utils.set_random_seed(0)

# Load and preprocess: images stay uint8 in memory; the model scales them by 1/255 itself.
train, test = cnnkit.datasets.image_dataset_from_directory(
    args.data / "cifar10-jpeg" / "train", image_size=(32, 32), validation_split=0.2,
    subset="both", seed=0)
class_names = train.class_names
x_train, y_train = train.images.permute(0, 2, 3, 1).numpy(), train.labels.numpy()  # NHWC as Keras
x_test, y_test = test.images.permute(0, 2, 3, 1).numpy(), test.labels.numpy()
if args.limit:
    x_train, y_train = x_train[:args.limit], y_train[:args.limit]
x_train = x_train.astype("float32") / 255.0
x_test = x_test.astype("float32") / 255.0
y_train = cnnkit.utils.to_categorical(y_train, 10)
y_test = cnnkit.utils.to_categorical(y_test, 10)

model = cnnkit.Sequential([
    layers.Input((32, 32, 3)),
    layers.Conv2D(32, (3, 3), activation="relu"),
    layers.MaxPooling2D((2, 2)),

    layers.Conv2D(64, (3, 3), activation="relu"),
    layers.MaxPooling2D((2, 2)),

    layers.Flatten(),
    layers.Dense(64, activation="relu", dtype=head),
    layers.Dense(10, activation="softmax", dtype=head),  # 10 classes
], name="simple-cnn")
model.summary()

model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"],
              precision="bf16" if args.bf16 else "auto", jit_compile=args.jit_compile)
start = time.perf_counter()
history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=64,
                    validation_data=(x_test, y_test))
seconds = time.perf_counter() - start
plot_accuracy(history, args.out / "seed003_accuracy.png")

test_loss, test_acc = model.evaluate(x_test, y_test)
print(f"Test accuracy: {test_acc:.4f}")
print(f"time per epoch: {seconds / args.epochs:.1f}s over {args.epochs} epochs, "
      f"{len(x_train)} training images")

index = np.random.randint(len(x_test))
sample_image = x_test[index]
true_label = np.argmax(y_test[index])
prediction = model.predict(np.expand_dims(sample_image, axis=0))
predicted_label = np.argmax(prediction)

import matplotlib  # noqa: E402
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
plt.imshow(sample_image)
plt.title(f"Actual: {class_names[true_label]} | Predicted: {class_names[predicted_label]}")
plt.axis("off")
plt.savefig(args.out / "seed003_sample_prediction.png", dpi=100)
print(f"sample prediction: {args.out / 'seed003_sample_prediction.png'}")
