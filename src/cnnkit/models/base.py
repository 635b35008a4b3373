"""Model: a ``torch.nn.Module`` with Keras's compile / fit / evaluate / predict / summary / save.

``cnnkit.Model(module)`` wraps any PyTorch module; ``cnnkit.Sequential`` subclasses Model.
Either way the same engine trains it and the same files save it.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import torch
from torch import nn
from torch.nn.parameter import is_lazy

from .. import keras_tensor
from ..data.loader import InMemoryLoader, as_images, as_labels, as_tensors
from ..keras_layout import KerasWeightsMixin, weight_specs
from ..layers import keras_to_torch_shape
from ..train import engine, fit_args
from ..train.progress import use_bar
from ..train import losses as losses_mod
from ..train import optim as optim_mod
from ..train import sanity
from ..metrics import get as get_metric
from ..speed import policy as speed_policy
from ..utils import pick_device
from . import subclass
from .preprocess import Preprocess

__all__ = ["Model"]


class NotCompiledError(AttributeError, RuntimeError):
    """Training state asked of a model that has not been compiled."""


def _param_device(module: nn.Module) -> torch.device:
    """Where the module's weights are (the CPU for a model without any)."""
    return next(iter(module.parameters()), torch.zeros(())).device


def _is_dataset(obj) -> bool:
    return hasattr(obj, "images") and hasattr(obj, "labels")


def _eval_source(obj):
    """Keras-style data objects (``image_dataset_from_directory``'s Dataset, generator
    flows) -> what evaluate/predict/validation read: their tensors, or a batch loader."""
    return obj.eval_source() if hasattr(obj, "eval_source") else obj


def _is_batch_iterable(obj) -> bool:
    """A DataLoader-like source of ready batches (not arrays, tensors, tuples or datasets)."""
    return isinstance(obj, (torch.utils.data.DataLoader, InMemoryLoader))


class Model(KerasWeightsMixin, nn.Module):
    """Wrap ``module`` (or subclass and implement ``call``) to get the Keras workflow.

    ``input_shape`` is Keras's (H, W, C) (or (F,)); ``output`` says what the module returns:
    'logits' (PyTorch's convention, the default), 'probabilities' or 'raw' (regression).
    ``Model(inputs, outputs)`` with symbolic tensors builds a functional model instead
    (``models/functional.py``); subclassing is in ``models/subclass.py``.
    """

    multi_label = False   # one sigmoid per label (run/multilabel.py); saved in config.json
    thresholds = None     # multi-label: per-label thresholds tuned on validation (None = 0.5)

    def __new__(cls, *args, **kwargs):
        if cls is Model and keras_tensor.is_symbolic(
                list(args[:2]) + [kwargs.get("inputs"), kwargs.get("outputs")]):
            from .functional import Functional
            return super().__new__(Functional)
        return super().__new__(cls)

    def __init__(self, module: nn.Module | None = None, input_shape=None, class_names=None,
                 preprocess: Preprocess | dict | None = None, output: str = "logits",
                 name: str | None = None, architecture: dict | None = None):
        if keras_tensor.is_symbolic([module, input_shape]):
            # a subclass calling super().__init__(inputs, outputs): it becomes functional
            from .functional import as_functional_subclass
            as_functional_subclass(self, module, input_shape, name=name)
            return
        super().__init__()
        if output not in ("logits", "probabilities", "raw"):
            raise ValueError(f"output must be 'logits', 'probabilities' or 'raw', got {output!r}")
        self.module = module
        self.name = name or (type(module).__name__ if module is not None else type(self).__name__)
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.class_names = list(class_names) if class_names is not None else None
        if isinstance(preprocess, dict):
            preprocess = Preprocess.from_config(preprocess)
        self.preprocess = preprocess or Preprocess()
        self.output_kind = output
        self.architecture = architecture
        self.stop_training = False
        self.compiled = False
        self.optimizer = None
        self.loss = None
        self.metrics_list = []
        self.device = None
        self.precision = "auto"
        self.jit_compile = False
        self.timing = []
        # Activation layout for the engine; plain modules may call .view(), so stay contiguous.
        self.memory_format = torch.contiguous_format

    # -- the network -----------------------------------------------------------------
    def call(self, x: torch.Tensor) -> torch.Tensor:
        if self.module is None:
            raise NotImplementedError("subclass Model and implement call(x), or pass a module")
        return self.module(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return subclass.call_with_training(self, self.preprocess(x))

    def __call__(self, x, *args, **kwargs):
        if keras_tensor.is_symbolic(x):  # a model used as a layer of a functional model
            return keras_tensor.symbolic_call(self, x, *args, **kwargs)
        if not args and (isinstance(x, np.ndarray) or (
                isinstance(x, (list, tuple)) and any(isinstance(a, np.ndarray) for a in x))):
            return subclass.call_on_arrays(self, x, **kwargs)
        if "training" in kwargs:  # Keras's model(x, training=...)
            with keras_tensor.training_mode(self, kwargs.pop("training")):
                return super().__call__(x, *args, **kwargs)
        return super().__call__(x, *args, **kwargs)

    def __setattr__(self, name: str, value) -> None:
        value = subclass.wrap_layer_lists(value)
        for layer in (value if isinstance(value, nn.ModuleList) else [value]):
            subclass.name_layer(self, layer)
        super().__setattr__(name, value)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "layers":  # a subclassed or wrapped model: its tracked layers
                return subclass.tracked_layers(self)
            raise

    def build(self, input_shape) -> None:
        """Keras's ``build((None, H, W, C))``: create every weight for that input shape."""
        subclass.build(self, input_shape)

    def symbolic_output_shapes(self, shapes):
        """A model called as a layer of a functional model: its output shape(s)."""
        return subclass.symbolic_output_shapes(self, shapes)

    @property
    def inputs(self) -> list:
        """The model's symbolic inputs (a Sequential gets a graph over its layers on first use)."""
        return subclass.symbolic_graph(self)[0]

    @property
    def outputs(self) -> list:
        return subclass.symbolic_graph(self)[1]

    @property
    def input(self):
        return self.inputs[0] if len(self.inputs) == 1 else self.inputs

    @property
    def output(self):
        return self.outputs[0] if len(self.outputs) == 1 else self.outputs

    def get_layer(self, name: str | None = None, index: int | None = None):
        """Keras's ``get_layer(name=...)`` or ``get_layer(index=...)``."""
        return subclass.get_layer(self, name, index)

    @property
    def output_activation(self) -> str | None:
        return "softmax" if self.output_kind == "probabilities" else None

    @property
    def torch_input_shape(self) -> tuple | None:
        return keras_to_torch_shape(self.input_shape) if self.input_shape is not None else None

    def feature_layer(self) -> nn.Module | None:
        """The last convolutional module: where Grad-CAM looks by default."""
        target = self.module if self.module is not None else self
        finder = getattr(target, "feature_layer", None)
        if callable(finder) and target is not self:
            return finder()
        convs = [m for m in target.modules() if isinstance(m, nn.Conv2d)]
        return convs[-1] if convs else None

    # -- Keras bookkeeping -----------------------------------------------------------
    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.parameters())

    @trainable.setter
    def trainable(self, value: bool) -> None:
        """Keras's ``model.trainable = False``: freeze every weight, BatchNorm statistics too."""
        from .transfer import set_trainable
        set_trainable(self, bool(value))

    def count_params(self) -> int:
        """Keras's count (every weight, BatchNorm statistics too) for Keras-built models; the
        parameter count (PyTorch's convention) for a wrapped module or zoo network."""
        if self.module is not None:
            return sum(p.numel() for p in self.parameters())
        return sum(spec.tensor.numel() for spec in weight_specs(self))

    @property
    def losses(self) -> list:
        """Keras's ``model.losses``: the layers' regularization penalties (scalar tensors)."""
        from ..regularizers import collect_losses
        return collect_losses(self)

    # get_weights / set_weights / weights / trainable_weights: Keras layouts (keras_layout.py)

    @property
    def learning_rate(self) -> float:
        if self.optimizer is None:
            # AttributeError, so hasattr() (and torch.jit tracing) see "no learning rate yet"
            raise NotCompiledError("the model is not compiled yet; call compile() first")
        if isinstance(getattr(type(self.optimizer), "learning_rate", None), property):
            return float(self.optimizer.learning_rate)  # a Keras optimizer (schedules too)
        return float(self.optimizer.param_groups[0]["lr"])

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        """Set the first group's rate; other groups keep their ratio to it (discriminative rates)."""
        if isinstance(getattr(type(self.optimizer), "learning_rate", None), property):
            self.optimizer.learning_rate = value
            return
        old = self.learning_rate
        for group in self.optimizer.param_groups:
            group["lr"] = float(value) * (group["lr"] / old if old else 1.0)

    # -- compile / fit / evaluate / predict -----------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, learning_rate=None,
                device=None, precision: str = "auto", jit_compile: bool | str = False,
                ema: float | None = None, ema_warmup: bool = True):
        """Choose optimizer, loss and metrics by Keras name or object; pick the device.

        ``jit_compile=True`` (Keras's name) compiles what cnnkit has compiled kernels for: on
        CPUs, the relu Conv2D -> 2x2 MaxPooling2D blocks of a Sequential (``cnnkit.speed.kernels``;
        seconds to compile at the first batch, a C++ compiler needed, eager fallback);
        ``'auto'`` is eager, as on Keras's torch backend. A choice slower on this machine
        (bf16 without fast bf16, the kernels without AVX-512) is honoured with one
        ``cnnkit.PerformanceWarning``.
        ``ema=0.999``: ``fit`` keeps an exponential moving average of the weights (``model.ema``,
        ``cnnkit.train.averaging.EMA``): validation and the weights after ``fit`` are the average."""
        if loss is None:
            raise ValueError("compile() needs a loss, e.g. loss='sparse_categorical_crossentropy'")
        self.loss = losses_mod.get(loss)
        if self.loss.from_logits and self.output_activation in ("softmax", "sigmoid"):
            warnings.warn(f"the loss was given from_logits=True but model '{self.name}' ends in "
                          f"{self.output_activation}; cnnkit computes the loss from the layer's "
                          "pre-activation output, which is what you meant", UserWarning, stacklevel=2)
        self.device = pick_device(device)
        self.precision = precision
        self.jit_compile = speed_policy.resolve_jit_compile(jit_compile)  # 'auto': eager
        speed_policy.check_flags(self.device, precision, self.jit_compile)  # slower here: warn
        self.to(self.device)
        opt = optim_mod.get(optimizer, learning_rate)
        self._deferred_optimizer = None
        if isinstance(opt, optim_mod.Optimizer) and subclass.weights_pending(self):
            self._deferred_optimizer, self.optimizer = opt, None  # built with the layers (fit)
        else:
            self.optimizer = opt.build(self.trainable_parameters()) if isinstance(opt, optim_mod.Optimizer) else opt
        from ..train.averaging import EMA
        self.ema = EMA(ema, warmup=ema_warmup) if ema else None
        self._metric_specs = list(metrics or [])
        self.metrics_list = [get_metric(m, self.loss.name, self.output_activation) for m in self._metric_specs]
        self.compiled = True
        self.compile_config = {  # saved with the model so load_model can compile it again
            "optimizer": type(opt).__name__.lower() if isinstance(opt, optim_mod.Optimizer) else "adam",
            "learning_rate": float(self.optimizer.param_groups[0]["lr"] if self.optimizer is not None
                                   else opt.learning_rate),
            "loss": self.loss.name,
            "from_logits": self.loss.from_logits,
            "metrics": [m if isinstance(m, str) else getattr(m, "name", getattr(m, "__name__", str(m)))
                        for m in self._metric_specs],
        }
        return self

    def trainable_parameters(self):
        return [p for p in self.parameters() if p.requires_grad]

    def _require_compiled(self):
        if not self.compiled:
            raise RuntimeError(f"model '{self.name}' must be compiled before training or evaluating: "
                               "call model.compile(optimizer='adam', loss=..., metrics=['accuracy'])")

    def _num_outputs(self) -> int | None:
        """The output count when it is known without running the model: the count seen on a
        real batch of this model with these parameter shapes (``Sequential`` knows it from its
        layers). None when unknown; fit/evaluate then check labels on the first batch."""
        seen = self.__dict__.get("_outputs_seen")
        if seen is not None and seen[0] == self._output_signature():
            return seen[1]
        return None

    def _output_signature(self) -> tuple:
        """What the cached output count depends on: the input shape and every parameter's
        shape (a new head, ``reset_classifier``, a lazy layer materialising all change it)."""
        return self.input_shape, tuple((name, None if is_lazy(p) else tuple(p.shape))
                                       for name, p in self.named_parameters())

    @property
    def output_shape(self) -> tuple | None:
        if self.input_shape is None:
            return None
        was = self.training
        self.eval()
        with torch.no_grad():
            dev = next(self.parameters()).device
            out = self(torch.zeros((1, *self.torch_input_shape), device=dev))
        self.train(was)
        return tuple(out.shape[1:])

    def _images_labels(self, x, y):
        """Arrays, tensors or a dataset object -> (images, labels) tensors, shape-checked."""
        if isinstance(x, (str,)) or hasattr(x, "__fspath__"):
            from .. import datasets
            channels = self.input_shape[-1] if self.input_shape and len(self.input_shape) == 3 else 3
            x = datasets.image_dataset_from_directory(
                x, image_size=self.input_shape[:2] if self.input_shape else None,
                color_mode={1: "grayscale", 4: "rgba"}.get(channels, "rgb"))
        if _is_dataset(x):
            if self.class_names is None and getattr(x, "class_names", None):
                self.class_names = list(x.class_names)
            if getattr(x, "multi_label", False):  # a MultiLabelDataset: sigmoids per label
                self.multi_label = True
            images, labels = x.images, x.labels
            if self.input_shape is not None:
                images = as_images(images, self.torch_input_shape)
            return images, labels
        if self.input_shape is None:
            images = as_images(x)
            self._set_input_shape(tuple(images.shape[1:]))
            return images, (as_labels(y) if y is not None else None)
        return as_tensors(x, y, self.torch_input_shape)

    def _set_input_shape(self, torch_shape: tuple) -> None:
        """Learn the input shape from the first data seen: (C, H, W) -> Keras's (H, W, C)."""
        self.input_shape = (torch_shape[1], torch_shape[2], torch_shape[0]) if len(torch_shape) == 3 \
            else tuple(torch_shape)

    def _check_labels(self, labels: torch.Tensor | None, n_out: int | None = None) -> None:
        """Refuse labels the model cannot learn from, before any training step runs.

        Against ``n_out`` outputs, or the count known without running the model; when that is
        unknown this checks nothing, and ``_labels_checked_on_first_batch`` does it instead."""
        n_out = self._num_outputs() if n_out is None else n_out
        if labels is None or n_out is None:
            return
        if labels.ndim == 2:  # one-hot or soft rows
            if labels.shape[1] != n_out:
                raise ValueError(f"labels have {labels.shape[1]} columns but model '{self.name}' has "
                                 f"{n_out} outputs")
            return
        regression = self.loss.name in ("mse", "mae") and n_out == 1
        if labels.is_floating_point() or self.loss.name.startswith("binary") or regression \
                or getattr(self.loss, "any_targets", False):
            return
        bad = (labels < 0) | (labels >= n_out)
        if bool(bad.any()):
            raise ValueError(f"labels must be class indices in [0, {n_out}) for model '{self.name}' "
                             f"with {n_out} outputs; found {int(bad.sum())} outside, e.g. "
                             f"{int(labels[bad][0])}. Check the labels or the last layer's units")

    @contextlib.contextmanager
    def _labels_checked_on_first_batch(self, *labels: torch.Tensor | None):
        """Within the block, when the output count is not known without running the model
        (a wrapped module, a zoo net before its first batch), check ``labels`` against the
        outputs of the first real forward pass: after that forward, before any loss, backward
        or optimizer step. On bad labels the buffers that forward moved (BatchNorm running
        statistics) are put back, so the model is as it was. The count is then remembered."""
        labels = [lab for lab in labels if lab is not None]
        if not labels or self._num_outputs() is not None:
            yield  # nothing to check, or already checked up front
            return
        buffers = {name: b.detach().clone() for name, b in self.named_buffers() if not is_lazy(b)}

        def check(module, inputs, outputs):
            handle.remove()
            if not isinstance(outputs, torch.Tensor) or outputs.ndim < 2:
                return  # nothing to read a class count from (as before: no check)
            n_out = int(outputs.shape[-1])
            self._outputs_seen = (self._output_signature(), n_out)
            try:
                for lab in labels:
                    self._check_labels(lab, n_out)
            except ValueError:
                with torch.no_grad():
                    for name, b in self.named_buffers():
                        if name in buffers and not is_lazy(b):
                            b.copy_(buffers[name])
                raise

        handle = self.register_forward_hook(check)
        try:
            yield
        finally:
            handle.remove()

    def _loader(self, images, labels, batch_size, shuffle=False, seed=None, sample_weight=None):
        device = self.device or _param_device(self)
        # Keep the data where the model trains when it is on a GPU; CPU tensors otherwise.
        return InMemoryLoader(images, labels, batch_size=batch_size, shuffle=shuffle, seed=seed,
                              device=device, sample_weight=sample_weight)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1, augment=None, seed=None, scheduler=None):
        """Train on arrays (NHWC numpy as in Keras, or tensors), a dataset object or a folder.

        ``steps_per_epoch``, ``validation_steps``, ``validation_batch_size`` and
        ``validation_freq`` are Keras's. ``augment`` is a batched augmentation
        ``f(x, generator)`` (see cnnkit.data.augment).
        Returns a History whose ``.history`` has Keras's keys.
        """
        self._require_compiled()
        from ..train.averaging import with_model_ema
        callbacks = with_model_ema(self, callbacks)
        if hasattr(x, "flow_spec"):  # ImageDataGenerator(...).flow(x, y)
            x, y, batch_size, augment = x.flow_spec(batch_size, augment)
        validation_data = _eval_source(validation_data)
        batch_size = batch_size or 32
        loop = {"steps_per_epoch": fit_args.check_steps("steps_per_epoch", steps_per_epoch),
                "validation_steps": fit_args.check_steps("validation_steps", validation_steps),
                "validation_freq": fit_args.check_validation_freq(validation_freq)}
        val_batch = validation_batch_size or fit_args.eval_batch_size(
            None, keras_default=batch_size,
            exact=bool(validation_steps) or fit_args.listens(callbacks, "on_test_batch_begin",
                                                               "on_test_batch_end"))
        if _is_batch_iterable(x):  # a torch DataLoader or any iterable of (x, y) batches
            val = self._val_batches(validation_data, val_batch)
            sanity.check_fit(self, getattr(x, "images", None), getattr(x, "labels", None),
                             getattr(val, "labels", None))
            subclass.finish_build_from_batches(self, x)
            return engine.fit_loop(
                self, self.optimizer, self.loss, self.metrics_list, sanity.checked_batches(self, x),
                epochs=epochs, val_data=sanity.checked_batches(self, val), initial_epoch=initial_epoch,
                callbacks=callbacks or [], augment=augment, class_weight=class_weight,
                verbose=verbose, device=self.device, precision=self.precision, scheduler=scheduler,
                **loop)
        images, labels = self._images_labels(x, y)
        if labels is None:
            raise ValueError("fit() needs labels: pass y, or a dataset with .labels")
        subclass.finish_build(self, tuple(images.shape[1:]))
        weights = torch.as_tensor(np.asarray(sample_weight), dtype=torch.float32) if sample_weight is not None else None
        if validation_data is None and validation_split:
            if not 0 < validation_split < 1:
                raise ValueError(f"validation_split must be in (0, 1), got {validation_split}")
            # Keras takes the last fraction, before any shuffling.
            cut = int(len(images) * (1 - validation_split))
            validation_data = (images[cut:], labels[cut:])
            images, labels = images[:cut], labels[:cut]
            weights = weights[:cut] if weights is not None else None
        self._check_labels(labels)
        val_loader, v_labels = None, None
        if validation_data is not None and _is_batch_iterable(validation_data):
            val_loader = validation_data
        elif validation_data is not None:
            vx, vy, vw = fit_args.validation_parts(validation_data, _is_dataset(validation_data))
            v_images, v_labels = self._images_labels(vx, vy)
            self._check_labels(v_labels)
            val_loader = self._loader(v_images, v_labels, val_batch, sample_weight=vw)
        sanity.check_fit(self, images, labels, v_labels)
        train_loader = self._loader(images, labels, batch_size, shuffle=shuffle, seed=seed,
                                    sample_weight=weights)
        with self._labels_checked_on_first_batch(labels, v_labels):
            return engine.fit_loop(
                self, self.optimizer, self.loss, self.metrics_list, train_loader, epochs=epochs,
                val_data=val_loader, initial_epoch=initial_epoch, callbacks=callbacks or [],
                augment=augment, class_weight=class_weight, verbose=verbose, device=self.device,
                precision=self.precision, scheduler=scheduler, **loop)

    def lr_find(self, x=None, y=None, batch_size=None, start_lr=1e-7, end_lr=10.0, num_it=100,
                stop_div=True, beta=0.98, seed=0):
        """fastai's learning-rate finder with the compiled loss and optimizer: ``num_it`` steps
        at rates rising from ``start_lr`` to ``end_lr``; returns an ``LRFindResult`` (``.lrs``,
        ``.losses`` smoothed, ``.suggestions`` {'valley', 'steepest', 'minimum'}, ``.plot(path)``).
        The weights, the optimizer's state and torch's random state are put back afterwards."""
        from ..train.lr_finder import lr_find
        self._require_compiled()
        images, labels = self._images_labels(x, y)
        if labels is None:
            raise ValueError("lr_find() needs labels: pass y, or a dataset with .labels")
        subclass.finish_build(self, tuple(images.shape[1:]))
        self._check_labels(labels)
        return lr_find(self, images, labels, batch_size=batch_size or 32, start_lr=start_lr,
                       end_lr=end_lr, num_it=num_it, stop_div=stop_div, beta=beta, seed=seed)

    def _val_batches(self, validation_data, batch_size):
        if validation_data is None or _is_batch_iterable(validation_data):
            return validation_data
        vx, vy, vw = fit_args.validation_parts(validation_data, _is_dataset(validation_data))
        images, labels = self._images_labels(vx, vy)
        return self._loader(images, labels, batch_size, sample_weight=vw)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False, tta=False):
        """Loss and metrics on held-out data: a scalar, a list [loss, *metrics] or a dict.

        ``sample_weight`` weighs each sample's loss; ``steps`` stops after that many batches;
        ``callbacks`` get Keras's ``on_test_*`` events; ``tta`` (True = 'flip', or
        'flip_translate') averages the probabilities over test-time views (cnnkit.train.tta)."""
        from ..train.tta import resolve
        tta = resolve(tta)
        self._require_compiled()
        steps = fit_args.check_steps("steps", steps)
        labels = None
        x = _eval_source(x)
        if _is_batch_iterable(x):
            batches = sanity.checked_batches(self, x)
        else:
            images, labels = self._images_labels(x, y)
            self._check_labels(labels)
            sanity.check_targets(self.loss, labels)
            weights = None if sample_weight is None else torch.as_tensor(np.asarray(sample_weight),
                                                                         dtype=torch.float32)
            size = fit_args.eval_batch_size(batch_size, keras_default=fit_args.KERAS_BATCH,
                                            exact=bool(steps) or fit_args.listens(
                                                callbacks, "on_test_batch_begin", "on_test_batch_end"))
            batches = self._loader(images, labels, size, sample_weight=weights)
        cbs = engine.CallbackList(callbacks or [], self, {"verbose": verbose, "epochs": 1, "steps": steps})
        with self._labels_checked_on_first_batch(labels):
            logs = engine.evaluate_loop(self, batches,
                                        self.loss, self.metrics_list, device=self.device,
                                        precision=self.precision, callbacks=cbs, steps=steps,
                                        verbose=verbose, tta=tta)
        if verbose in (1, 2) or (verbose == "auto" and use_bar(1)):
            print(" - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
        return fit_args.evaluate_result(logs, return_dict)

    def predict(self, x, batch_size=None, verbose=0, steps=None, callbacks=None) -> np.ndarray:
        """What the model computes, as numpy (Keras's contract): probabilities where it ends in
        softmax/sigmoid, its raw outputs otherwise; image-shaped outputs channels-last
        (N, H, W, C). A single image gives one row. ``predict_proba`` always gives
        probabilities."""
        return subclass.keras_outputs(self, self._predict_raw(x, batch_size, verbose, steps, callbacks))

    def predict_on_batch(self, x) -> np.ndarray:
        return self.predict(x, batch_size=len(x))

    def predict_proba(self, x, batch_size=None) -> np.ndarray:
        """Class probabilities, (N, classes): softmax (sigmoid for one output) added to a
        model that outputs logits."""
        out = torch.from_numpy(self._predict_raw(x, batch_size))
        if self.output_activation is None and self.output_kind == "logits":
            one = out.shape[-1] == 1 or self.multi_label  # multi-label: a sigmoid per label
            out = torch.sigmoid(out) if one else torch.softmax(out, dim=-1)
        return out.numpy()

    def predict_labels(self, x, batch_size=None, thresholds=None) -> list[list[dict]]:
        """Multi-label: per image, every label whose probability is at or above its
        threshold (``thresholds``, else the model's tuned ones, else 0.5), most probable
        first, as ``{"class", "probability", "threshold"}``."""
        from ..metrics_multilabel import labels_above
        probs = self.predict_proba(x, batch_size)
        probs = probs[None] if probs.ndim == 1 else probs
        t = thresholds if thresholds is not None else self.thresholds
        return [labels_above(p, self.class_names, t) for p in probs]

    def _predict_raw(self, x, batch_size=None, verbose=0, steps=None, callbacks=None) -> np.ndarray:
        """The model's outputs as numpy in torch layout; a single image gives one row."""
        single = False
        x = _eval_source(x)
        if _is_batch_iterable(x):
            device = self.device or next(self.parameters()).device
            return engine.predict_loop(self, x, device=device, precision=self.precision).numpy()
        if not _is_dataset(x):
            arr = x if isinstance(x, torch.Tensor) else np.asarray(x)
            expected = self.torch_input_shape
            wrong_size = sanity.single_image_error(tuple(arr.shape), expected, self.name)
            if wrong_size is not None:  # one image, not a batch: name the size it needs
                raise wrong_size
            if expected is not None and len(expected) == 3 and arr.ndim == 3 and (
                    tuple(arr.shape) in ((expected[1], expected[2], expected[0]), tuple(expected))):
                single, x = True, arr[None]
            elif expected is not None and len(expected) == 3 and expected[0] == 1 and arr.ndim == 2:
                single, x = True, arr[None]
        images, _ = self._images_labels(x, None)
        device = self.device or _param_device(self)
        steps = fit_args.check_steps("steps", steps)
        size = fit_args.eval_batch_size(batch_size, keras_default=fit_args.KERAS_BATCH,
                                        exact=bool(steps) or fit_args.listens(
                                            callbacks, "on_predict_batch_begin", "on_predict_batch_end"))
        cbs = engine.CallbackList(callbacks or [], self, {"verbose": verbose, "epochs": 1, "steps": steps})
        out = engine.predict_loop(self, InMemoryLoader(images, None, size, device=device),
                                  device=device, precision=self.precision, callbacks=cbs, steps=steps,
                                  verbose=verbose)
        result = out.numpy()
        return result[0] if single else result

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on one batch; that batch's loss and metrics (as Keras returns them)."""
        from ..train.batch_api import train_on_batch
        return train_on_batch(self, x, y, sample_weight, class_weight, return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        from ..train.batch_api import test_on_batch
        return test_on_batch(self, x, y, sample_weight, return_dict)

    def predict_classes(self, x, batch_size=None) -> np.ndarray:
        return self.predict_proba(x, batch_size).argmax(axis=-1)

    # -- summary / save --------------------------------------------------------------
    def summary(self, line_length=None, positions=None, print_fn=print, expand_nested=False,
                show_trainable=False, layer_range=None):
        from .summary import summary_text
        print_fn(summary_text(self, line_length=line_length, positions=positions,
                              show_trainable=show_trainable, expand_nested=expand_nested,
                              layer_range=layer_range))

    def save(self, path, overwrite: bool = True):
        from .saving import save_model
        return save_model(self, path, overwrite=overwrite)

    def save_weights(self, path):
        from .saving import save_weights
        return save_weights(self, path)

    def load_weights(self, path, strict: bool = True):
        from .saving import load_weights
        return load_weights(self, path, strict=strict)
