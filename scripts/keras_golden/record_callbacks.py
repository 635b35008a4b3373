"""Record which callback hooks Keras 3 calls, with what, and the History it returns.

Run: /work/tfvenv/bin/python scripts/keras_golden/record_callbacks.py
Writes tests/golden/keras/train/callbacks.json. A Dense(3) softmax model from fixed weights is
trained with SGD(0.1) on a fixed 12-sample batch set (shuffle=False), so the losses in the
logs can be compared too.
"""

import json
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import numpy as np  # noqa: E402
import keras  # noqa: E402

OUT = Path(__file__).resolve().parents[2] / "tests/golden/keras/train/callbacks.json"
rng = np.random.default_rng(1)
X = rng.normal(size=(12, 4)).astype("float32")
Y = np.arange(12) % 3
XV = rng.normal(size=(8, 4)).astype("float32")
YV = np.arange(8) % 3
KERNEL = (rng.normal(size=(4, 3)) * 0.5).astype("float32")
BIAS = np.zeros(3, dtype="float32")


def plain(v):
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if hasattr(v, "shape") and getattr(v, "shape", ()) != ():
        return {"array_shape": list(np.shape(v))}
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


class Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def __getattribute__(self, name):
        if name.startswith("on_") and name != "on_epoch_begin_hook":
            def hook(*args, **kwargs):
                logs = kwargs.get("logs", args[-1] if args and isinstance(args[-1], (dict, type(None))) else None)
                index = args[0] if args and isinstance(args[0], int) else None
                self.events.append([name, index, None if logs is None else plain(dict(logs))])
            return hook
        return super().__getattribute__(name)


def model(metrics=("accuracy",)):
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    m.layers[0].set_weights([KERNEL, BIAS])
    m.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
              metrics=list(metrics))
    return m


def main():
    out = {"x": X.tolist(), "y": Y.tolist(), "xv": XV.tolist(), "yv": YV.tolist(),
           "kernel": KERNEL.tolist(), "bias": BIAS.tolist(), "keras_version": keras.__version__}
    m = model()
    rec = Recorder()
    h = m.fit(X, Y, batch_size=4, epochs=2, validation_data=(XV, YV), shuffle=False,
              callbacks=[rec], verbose=0)
    out["fit"] = {"events": rec.events, "history": plain(h.history), "params": plain(h.params)}

    rec = Recorder()
    result = m.evaluate(XV, YV, batch_size=4, callbacks=[rec], verbose=0)
    out["evaluate"] = {"events": rec.events, "result": plain(result),
                       "return_dict": plain(m.evaluate(XV, YV, batch_size=4, verbose=0, return_dict=True)),
                       "steps_1": plain(m.evaluate(XV, YV, batch_size=4, steps=1, verbose=0, return_dict=True)),
                       "sample_weight": plain(m.evaluate(XV, YV, batch_size=4, verbose=0, return_dict=True,
                                                         sample_weight=np.linspace(0.1, 2, 8)))}
    rec = Recorder()
    pred = m.predict(XV, batch_size=4, callbacks=[rec], verbose=0)
    out["predict"] = {"events": rec.events, "outputs": pred.tolist(),
                      "steps_1_shape": list(m.predict(XV, batch_size=4, steps=1, verbose=0).shape)}

    m = model()
    out["train_on_batch"] = {"result": plain(m.train_on_batch(X[:4], Y[:4])),
                             "return_dict": plain(m.train_on_batch(X[4:8], Y[4:8], return_dict=True)),
                             "test_on_batch": plain(m.test_on_batch(XV, YV)),
                             "test_return_dict": plain(m.test_on_batch(XV, YV, return_dict=True)),
                             "predict_on_batch": m.predict_on_batch(XV[:2]).tolist(),
                             "weighted": plain(m.train_on_batch(X[:4], Y[:4], sample_weight=np.array([1, 2, 0, 1.]),
                                                                return_dict=True)),
                             "kernel_after": m.layers[0].get_weights()[0].tolist()}

    m = model(metrics=["acc"])
    h = m.fit(X, Y, batch_size=4, epochs=4, validation_data=(XV, YV), validation_freq=2, shuffle=False,
              verbose=0)
    out["acc_validation_freq"] = {"history": plain(h.history), "epoch": h.epoch}

    m = model()
    rec = Recorder()
    h = m.fit(X, Y, batch_size=4, epochs=2, steps_per_epoch=2, shuffle=False, callbacks=[rec], verbose=0)
    out["steps_per_epoch"] = {"history": plain(h.history), "params": plain(h.params),
                              "batches": [e[1] for e in rec.events if e[0] == "on_train_batch_end"],
                              "kernel_after": m.layers[0].get_weights()[0].tolist()}

    m = model()
    rec = Recorder()
    h = m.fit(X, Y, batch_size=4, epochs=1, validation_data=(XV, YV), validation_steps=1,
              validation_batch_size=2, shuffle=False, callbacks=[rec], verbose=0)
    out["validation_steps"] = {"history": plain(h.history),
                               "test_batches": [e[1] for e in rec.events if e[0] == "on_test_batch_end"]}

    m = model()
    xn = X.copy()
    xn[5, 0] = np.nan  # batch 1 of epoch 0 gives a NaN loss
    rec = Recorder()
    h = m.fit(xn, Y, batch_size=4, epochs=3, validation_data=(XV, YV), shuffle=False,
              callbacks=[keras.callbacks.TerminateOnNaN(), rec], verbose=0)
    out["terminate_on_nan"] = {"history": plain(h.history), "epoch": h.epoch,
                               "events": [e[:2] for e in rec.events]}

    seen = []
    lam = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: seen.append(["train_begin", sorted(logs or {})]),
        on_epoch_begin=lambda epoch, logs: seen.append(["epoch_begin", epoch]),
        on_train_batch_begin=lambda batch, logs: seen.append(["batch_begin", batch]),
        on_epoch_end=lambda epoch, logs: seen.append(["epoch_end", epoch, sorted(logs)]),
        on_train_end=lambda logs: seen.append(["train_end", sorted(logs or {})]))
    model().fit(X, Y, batch_size=6, epochs=1, callbacks=[lam], verbose=0, shuffle=False)
    out["lambda"] = seen
    OUT.write_text(json.dumps(out, indent=None))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
