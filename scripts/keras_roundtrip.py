"""The Keras round trip, both interpreters: Keras trains, cnnkit loads and fine-tunes, Keras loads back.

    CNNKIT_THREADS=1 python scripts/keras_roundtrip.py [--tf-python /work/tfvenv/bin/python]

1. cnnkit side: reads MNIST's canonical training IDX files (../shared/datasets/mnist) and
   cuts three disjoint slices: Keras training images, cnnkit fine-tuning images, and 1,000
   held-out images (never trained on by either side).
2. Keras side (this same file run by the TensorFlow interpreter, ``--keras-train``): trains a
   small CNN (Conv-BN-pool-Conv-pool-Flatten-Dropout-Dense softmax), saves ``keras.keras``,
   records its outputs on the held-out images.
3. cnnkit: ``cnnkit.load_model('keras.keras')``; max |difference| of the outputs on the
   held-out images; fine-tunes one epoch; saves ``cnnkit.keras``.
4. Keras side (``--keras-check``): ``keras.saving.load_model('cnnkit.keras')``; max |difference|
   against cnnkit's outputs of the fine-tuned model.

Prints one JSON object with the numbers (and writes it to ``<workdir>/roundtrip.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MNIST = REPO.parent / "shared" / "datasets" / "mnist"


# -- Keras side (run by the TensorFlow interpreter; imports no cnnkit) -------------------------
def keras_train(work: Path, epochs: int, seed: int) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    from keras import layers
    _keras_threads()
    keras.utils.set_random_seed(seed)
    d = np.load(work / "data.npz")
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(16, 3, activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D(),
        layers.Conv2D(32, 3, activation="relu", padding="same"),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ], name="mnist_cnn")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t0 = time.time()
    model.fit(d["x_keras"], d["y_keras"], epochs=epochs, batch_size=64, verbose=0)
    seconds = time.time() - t0
    model.save(work / "keras.keras")
    probs = model.predict(d["x_held"], verbose=0)
    np.save(work / "keras_held.npy", probs)
    print(json.dumps({"keras_version": keras.__version__, "keras_train_seconds": round(seconds, 1),
                      "keras_held_accuracy": float((probs.argmax(1) == d["y_held"]).mean())}))


def _keras_threads() -> None:
    """TensorFlow on as many threads as cnnkit was given (CNNKIT_THREADS), on a shared machine."""
    threads = int(os.environ.get("CNNKIT_THREADS", "0") or 0)
    if threads:
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def keras_check(work: Path) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    _keras_threads()
    d = np.load(work / "data.npz")
    model = keras.saving.load_model(work / "cnnkit.keras")
    probs = model.predict(d["x_held"], verbose=0)
    theirs = np.load(work / "cnnkit_held.npy")
    print(json.dumps({"keras_reload_max_abs_diff": float(np.abs(probs - theirs).max()),
                      "keras_reload_held_accuracy": float((probs.argmax(1) == d["y_held"]).mean())}))


# -- cnnkit side ---------------------------------------------------------------------------------
def _tf(tf_python: str, mode: str, work: Path, *extra: str) -> dict:
    run = subprocess.run([tf_python, __file__, mode, str(work), *extra], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"the Keras side failed ({mode}):\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def cnnkit_side(args) -> dict:
    import torch
    import cnnkit
    from cnnkit.data.idx import read_idx
    work = Path(args.workdir or tempfile.mkdtemp(prefix="keras_roundtrip."))
    work.mkdir(parents=True, exist_ok=True)
    images = read_idx(MNIST / "train-images-idx3-ubyte.gz")[..., None].astype("float32") / 255.0
    labels = read_idx(MNIST / "train-labels-idx1-ubyte.gz").astype("int64")
    k, f = args.keras_images, args.finetune_images
    held = slice(len(images) - 1000, len(images))  # the last 1,000: neither side trains on them
    np.savez(work / "data.npz", x_keras=images[:k], y_keras=labels[:k], x_held=images[held],
             y_held=labels[held])
    result = {"keras_train_images": k, "cnnkit_finetune_images": f, "held_out_images": 1000}
    result.update(_tf(args.tf_python, "--keras-train", work, str(args.keras_epochs), str(args.seed)))

    model = cnnkit.load_model(work / "keras.keras")
    keras_probs = np.load(work / "keras_held.npy")
    probs = model.predict(images[held])
    result["cnnkit_load_max_abs_diff"] = float(np.abs(probs - keras_probs).max())
    result["cnnkit_load_argmax_agreement"] = float((probs.argmax(1) == keras_probs.argmax(1)).mean())

    t0 = time.time()
    cnnkit.utils.set_random_seed(args.seed)
    model.fit(images[k:k + f], labels[k:k + f], epochs=1, batch_size=64, verbose=0)
    result["cnnkit_finetune_seconds"] = round(time.time() - t0, 1)
    result["cnnkit_threads"] = torch.get_num_threads()
    model.eval()
    tuned = model.predict(images[held])
    result["cnnkit_finetuned_held_accuracy"] = float((tuned.argmax(1) == labels[held]).mean())
    result["finetune_changed_outputs_by"] = float(np.abs(tuned - probs).max())
    np.save(work / "cnnkit_held.npy", tuned)
    model.save(work / "cnnkit.keras")
    result.update(_tf(args.tf_python, "--keras-check", work))
    result["workdir"] = str(work)
    (work / "roundtrip.json").write_text(json.dumps(result, indent=1))
    return result


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--keras-train":
        return keras_train(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    if len(sys.argv) > 2 and sys.argv[1] == "--keras-check":
        return keras_check(Path(sys.argv[2]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tf-python", default="/work/tfvenv/bin/python")
    parser.add_argument("--keras-images", type=int, default=4000)
    parser.add_argument("--finetune-images", type=int, default=4000)
    parser.add_argument("--keras-epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None)
    print(json.dumps(cnnkit_side(parser.parse_args()), indent=1))


if __name__ == "__main__":
    main()
