"""Record Keras 3 optimizer steps and learning-rate schedules for cnnkit's tests.

Run with the TensorFlow venv: /work/tfvenv/bin/python scripts/keras_golden/record_optimizers.py
Writes tests/golden/keras/train/optimizers.json: for each optimizer configuration, the
kernel and bias of a Dense(3) layer after each of 4 train_on_batch steps from fixed weights
on a fixed batch (SparseCategoricalCrossentropy(from_logits=True)), and each schedule's
values at steps 0..11.
"""

import json
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import numpy as np  # noqa: E402
import keras  # noqa: E402
from keras import optimizers as ko  # noqa: E402
from keras.optimizers import schedules as ks  # noqa: E402

OUT = Path(__file__).resolve().parents[2] / "tests/golden/keras/train/optimizers.json"
rng = np.random.default_rng(0)
X = rng.normal(size=(8, 4)).astype("float32")
Y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
KERNEL = (rng.normal(size=(4, 3)) * 0.5).astype("float32")
BIAS = np.array([0.1, -0.2, 0.05], dtype="float32")
STEPS = 4


def schedules():
    return {
        "exponential": (ks.ExponentialDecay, dict(initial_learning_rate=0.1, decay_steps=2, decay_rate=0.5)),
        "exponential_staircase": (ks.ExponentialDecay, dict(initial_learning_rate=0.1, decay_steps=3,
                                                            decay_rate=0.5, staircase=True)),
        "piecewise": (ks.PiecewiseConstantDecay, dict(boundaries=[2, 5], values=[0.1, 0.05, 0.01])),
        "inverse_time": (ks.InverseTimeDecay, dict(initial_learning_rate=0.1, decay_steps=1, decay_rate=0.5)),
        "inverse_time_staircase": (ks.InverseTimeDecay, dict(initial_learning_rate=0.1, decay_steps=2,
                                                             decay_rate=0.5, staircase=True)),
        "polynomial": (ks.PolynomialDecay, dict(initial_learning_rate=0.1, decay_steps=6,
                                                end_learning_rate=0.01, power=2.0)),
        "polynomial_cycle": (ks.PolynomialDecay, dict(initial_learning_rate=0.1, decay_steps=4,
                                                      end_learning_rate=0.01, cycle=True)),
        "cosine": (ks.CosineDecay, dict(initial_learning_rate=0.1, decay_steps=6, alpha=0.1)),
        "cosine_warmup": (ks.CosineDecay, dict(initial_learning_rate=0.0, decay_steps=6, alpha=0.1,
                                               warmup_target=0.2, warmup_steps=3)),
        "cosine_restarts": (ks.CosineDecayRestarts, dict(initial_learning_rate=0.1, first_decay_steps=3,
                                                         t_mul=2.0, m_mul=0.5, alpha=0.1)),
    }


def optimizer_configs():
    return {
        "adam": (ko.Adam, dict(learning_rate=0.05)),
        "adam_amsgrad": (ko.Adam, dict(learning_rate=0.05, amsgrad=True)),
        "adam_eps": (ko.Adam, dict(learning_rate=0.05, epsilon=0.1)),
        "adam_weight_decay": (ko.Adam, dict(learning_rate=0.05, weight_decay=0.5)),
        "adamw": (ko.AdamW, dict(learning_rate=0.05)),
        "adamw_wd": (ko.AdamW, dict(learning_rate=0.05, weight_decay=0.3, beta_1=0.8)),
        "sgd": (ko.SGD, dict(learning_rate=0.5)),
        "sgd_momentum": (ko.SGD, dict(learning_rate=0.5, momentum=0.9)),
        "sgd_nesterov": (ko.SGD, dict(learning_rate=0.5, momentum=0.9, nesterov=True)),
        "sgd_weight_decay": (ko.SGD, dict(learning_rate=0.5, momentum=0.5, weight_decay=0.2)),
        "sgd_clipnorm": (ko.SGD, dict(learning_rate=0.5, clipnorm=0.1)),
        "sgd_clipvalue": (ko.SGD, dict(learning_rate=0.5, clipvalue=0.02)),
        "sgd_global_clipnorm": (ko.SGD, dict(learning_rate=0.5, global_clipnorm=0.1)),
        "adam_clipnorm": (ko.Adam, dict(learning_rate=0.05, clipnorm=0.05)),
        "rmsprop": (ko.RMSprop, dict(learning_rate=0.01)),
        "rmsprop_eps": (ko.RMSprop, dict(learning_rate=0.01, epsilon=0.1)),
        "rmsprop_momentum_centered": (ko.RMSprop, dict(learning_rate=0.01, momentum=0.5, centered=True)),
        "adagrad": (ko.Adagrad, dict(learning_rate=0.1)),
        "adadelta": (ko.Adadelta, dict(learning_rate=1.0)),
        "adamax": (ko.Adamax, dict(learning_rate=0.05)),
        "nadam": (ko.Nadam, dict(learning_rate=0.05)),
        "ftrl": (ko.Ftrl, dict(learning_rate=0.1, l1_regularization_strength=0.01,
                               l2_regularization_strength=0.01)),
        "ftrl_shrinkage": (ko.Ftrl, dict(learning_rate=0.1, l2_shrinkage_regularization_strength=0.05,
                                         beta=0.1, learning_rate_power=-0.3)),
    }


def run(opt, set_lr_after=None):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.layers[0].set_weights([KERNEL, BIAS])
    model.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    steps, losses = [], []
    for i in range(STEPS):
        if set_lr_after is not None and i == set_lr_after[0]:
            model.optimizer.learning_rate = set_lr_after[1]
        losses.append(float(model.train_on_batch(X, Y)))
        k, b = model.layers[0].get_weights()
        steps.append({"kernel": k.tolist(), "bias": b.tolist()})
    return {"steps": steps, "losses": losses, "iterations": int(model.optimizer.iterations.numpy()),
            "final_learning_rate": float(np.asarray(model.optimizer.learning_rate))}


def main():
    out = {"x": X.tolist(), "y": Y.tolist(), "kernel": KERNEL.tolist(), "bias": BIAS.tolist(),
           "keras_version": keras.__version__, "optimizers": {}, "schedules": {}, "scheduled": {}}
    for name, (cls, kw) in optimizer_configs().items():
        out["optimizers"][name] = {"class": cls.__name__, "kwargs": kw, **run(cls(**kw))}
    for name, (cls, kw) in schedules().items():
        sched = cls(**kw)
        out["schedules"][name] = {"class": cls.__name__, "kwargs": kw,
                                  "values": [float(sched(s)) for s in range(12)]}
    # schedules driving optimizers (weight decay uses the scheduled rate too)
    for opt_name, cls, kw in [("sgd", ko.SGD, dict(momentum=0.9)), ("adam", ko.Adam, dict(weight_decay=0.2)),
                              ("rmsprop", ko.RMSprop, dict())]:
        for sched_name in ("exponential", "cosine_warmup", "piecewise"):
            scls, skw = schedules()[sched_name]
            out["scheduled"][f"{opt_name}_{sched_name}"] = {
                "class": cls.__name__, "kwargs": kw, "schedule": sched_name,
                **run(cls(learning_rate=scls(**skw), **kw))}
    # model.optimizer.learning_rate = ... takes effect at the next step
    out["set_learning_rate"] = {"class": "Adam", "kwargs": {"learning_rate": 0.05}, "set_at": 2,
                                "value": 0.001, **run(ko.Adam(learning_rate=0.05), (2, 0.001))}
    out["set_learning_rate_sgd"] = {"class": "SGD", "kwargs": {"learning_rate": 0.5, "momentum": 0.9},
                                    "set_at": 2, "value": 0.05,
                                    **run(ko.SGD(learning_rate=0.5, momentum=0.9), (2, 0.05))}
    try:
        o = ko.SGD(learning_rate=ks.ExponentialDecay(0.1, 2, 0.5))
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        model.compile(optimizer=o, loss="mse")
        o.learning_rate = 0.2
        out["set_schedule_error"] = None
    except Exception as err:  # noqa: BLE001
        out["set_schedule_error"] = f"{type(err).__name__}: {err}"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
