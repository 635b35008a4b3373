"""Export a model to ONNX or TorchScript with its preprocessing inside the graph.

The exported graph takes what a deployment has at hand: **raw uint8 pixels, N×H×W×C**, at the
model's input size (``input_shape``), with a dynamic batch axis. Inside the graph: the
transpose to N×C×H×W, the model's ``preprocess`` (scaling, resize, channel repeat,
mean/std), the network, and a softmax. Its output is **class probabilities, N×K**; for a
multi-label model a sigmoid per label (N×L), with the per-label ``thresholds`` and
``"multi_label": true`` in the JSON.

Beside ``model.onnx`` goes ``model.onnx.json`` (the same for ``model.pt``): class names, the
input spec, the preprocessing config and the parity figure. ONNX files carry the same JSON
in their metadata (key ``cnnkit``), so the file alone is enough.

    result = export(model, "out/model.onnx")      # prints the parity check
    predictor = load_exported("out/model.onnx")
    probs = predictor.predict(uint8_nhwc)           # N×K numpy
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .explain import class_scores, scaled_input, tensor_ready
from .serve.images import model_input_shape
from .train.progress import Task

__all__ = ["export", "load_exported", "is_exported", "ExportResult", "ExportedModel",
           "ParityError", "ExportFileError", "deployable", "FORMATS"]

FORMATS = {"onnx": (".onnx",), "torchscript": (".pt", ".ts", ".torchscript")}
INPUT_NAME, OUTPUT_NAME = "images", "probabilities"
SPEC_FORMAT, SPEC_VERSION = "cnnkit-export", 1


class ExportFileError(ValueError):
    """A file that is not a readable ONNX / TorchScript export (corrupt, or another format)."""


class ParityError(RuntimeError):
    """The exported model disagrees with the PyTorch model by more than the tolerance."""


class _Deployable(nn.Module):
    """uint8 N×H×W×C pixels -> N×K probabilities: the whole model as one graph."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = scaled_input(self.model, images.permute(0, 3, 1, 2))  # N×H×W×C -> N×C×H×W
        if getattr(self.model, "multi_label", False):  # a sigmoid per label, not a softmax
            return _label_probabilities(self.model, x)
        return class_scores(self.model, x)[1]


def _label_probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """N×L sigmoid probabilities of a multi-label model (logits or sigmoid outputs)."""
    if getattr(model, "output_activation", None) == "sigmoid":
        return model(x)
    fn = getattr(model, "forward_logits", None)
    return torch.sigmoid(fn(x) if callable(fn) else model(x))


def deployable(model: nn.Module) -> nn.Module:
    """The module that gets exported: uint8 N×H×W×C in, probabilities out. Also the
    reference the parity check compares against."""
    return _Deployable(model).eval()


@dataclass
class ExportResult:
    path: Path           # the exported file
    spec_path: Path      # the JSON beside it
    format: str          # 'onnx' or 'torchscript'
    max_abs_diff: float  # largest |exported - pytorch| over the parity samples (nan if skipped)
    samples: int         # how many images the parity check used
    seconds: float       # time to export and check


def _format_of(path: Path, format: str | None) -> str:
    if format is not None:
        if format not in FORMATS:
            raise ValueError(f"format must be one of {sorted(FORMATS)}, got {format!r}")
        return format
    for name, suffixes in FORMATS.items():
        if path.suffix.lower() in suffixes:
            return name
    return "onnx"


def _parity_images(shape, samples, n: int) -> np.ndarray:
    """uint8 N×H×W×C for the parity check: the given samples, else seeded random pixels."""
    if samples is not None:
        arr = np.asarray(samples)
        if arr.ndim == 3:
            arr = arr[..., None] if shape[2] == 1 and arr.shape[-1] != 1 else arr[None]
        if arr.dtype != np.uint8:
            arr = (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)  # floats taken as [0, 1]
        if tuple(arr.shape[1:]) != tuple(shape):
            raise ValueError(f"parity samples must be N×{shape[0]}×{shape[1]}×{shape[2]} "
                             f"(N×H×W×C), got {arr.shape}")
        return tensor_ready(arr[:n])
    return np.random.default_rng(0).integers(0, 256, (n, *shape), dtype=np.uint8)


def _program(wrapper: nn.Module, example: torch.Tensor):
    """The ``torch.export`` graph with a dynamic batch axis, or None where torch.export fails
    (the exporters then fall back to tracing the module)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.export.export(wrapper, (example,), dynamic_shapes=(
                {0: torch.export.Dim("batch", min=1)},))
    except Exception as e:  # noqa: BLE001
        warnings.warn(f"torch.export failed ({type(e).__name__}: {str(e)[:200]}); "
                      "exporting by tracing instead", stacklevel=3)
        return None


def _export_onnx(wrapper: nn.Module, program, example: torch.Tensor, path: Path, opset: int,
                 metadata: str) -> None:
    import onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if program is not None:  # the torch.export-based exporter
            torch.onnx.export(program, (example,), str(path), input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], opset_version=opset, dynamo=True,
                              external_data=False, verbose=False)
        else:  # the TorchScript-based one
            torch.onnx.export(wrapper, (example,), str(path), input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], opset_version=min(opset, 17),
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                              dynamo=False)
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = "cnnkit", metadata
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def _export_torchscript(wrapper: nn.Module, program, example: torch.Tensor, path: Path,
                        metadata: str) -> None:
    """Trace the ``torch.export`` graph (plain ATen ops, no Python attributes of the model
    left to trip the tracer); the module itself only where torch.export failed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = program.module() if program is not None else wrapper
        traced = torch.jit.trace(graph, (example,), check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={"cnnkit.json": metadata})


def export(model: nn.Module, path, format: str | None = None, *, input_shape=None,
           class_names=None, samples=None, n_check: int = 100, atol: float = 1e-4,
           opset: int = 18, check: bool = True, verbose: bool = True) -> ExportResult:
    """Export ``model`` to ``path`` (ONNX or TorchScript), preprocessing included.

    format: 'onnx' or 'torchscript'; None picks from the suffix (.onnx; .pt/.ts) or ONNX.
    input_shape: (H, W, C), default ``model.input_shape``. class_names: default
    ``model.class_names`` (else "0".."K-1").
    samples: uint8 N×H×W×C images for the parity check (default: ``n_check`` seeded random
    images). The check runs the exported file (ONNX Runtime / TorchScript) and the PyTorch
    model on the same pixels, prints the largest absolute difference of the probabilities and
    raises ``ParityError`` above ``atol`` (the files stay on disk for inspection).
    """
    start = time.perf_counter()
    path = Path(path)
    fmt = _format_of(path, format)
    shape = model_input_shape(model, input_shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training, device = model.training, next(model.parameters(), torch.empty(0)).device
    wrapper = deployable(model.cpu())  # export and compare on the CPU, in float32, eval mode
    task = Task(f"exporting {path.name}", total=3 if check else 2, unit="stage",
                enabled=verbose, heartbeat=True, rate=False)
    try:
        task.advance(0, "tracing the model")
        images = _parity_images(shape, samples, n_check)
        with torch.no_grad():
            reference = wrapper(torch.from_numpy(images)).numpy()
        k = reference.shape[1]
        names = list(class_names or getattr(model, "class_names", None) or map(str, range(k)))
        if len(names) != k:
            raise ValueError(f"{len(names)} class names for a model with {k} outputs")
        spec = {
            "format": SPEC_FORMAT, "version": SPEC_VERSION, "runtime": fmt, "file": path.name,
            "name": getattr(model, "name", type(model).__name__),
            "input": {"name": INPUT_NAME, "dtype": "uint8", "layout": "NHWC",
                      "shape": [None, *shape],
                      "note": "raw pixels 0-255 at the model's input size; preprocessing "
                              "is inside the graph"},
            "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": [None, k],
                       "note": "class probabilities"},
            "class_names": names,
            "preprocess": model.preprocess.config() if hasattr(model, "preprocess") else None,
        }
        if getattr(model, "multi_label", False):  # sigmoid per label; labels at thresholds
            spec["output"]["note"] = ("label probabilities (a sigmoid each); a label is "
                                      "predicted at or above its threshold")
            spec["multi_label"] = True
            spec["thresholds"] = list(model.thresholds or [0.5] * k)
        example = torch.from_numpy(images[:2] if len(images) >= 2 else
                                   np.repeat(images[:1], 2, axis=0))
        metadata = json.dumps(spec)
        program = _program(wrapper, example)
        task.advance(1, f"writing {fmt}")
        if fmt == "onnx":
            _export_onnx(wrapper, program, example, path, opset, metadata)
        else:
            _export_torchscript(wrapper, program, example, path, metadata)
        task.advance(1, f"checking {fmt} against PyTorch on {len(images)} images" if check else None)
        diff = float("nan")
        if check:
            got = load_exported(path, spec=spec).predict(images)
            diff = float(np.abs(got - reference).max())
            spec["parity"] = {"samples": len(images), "max_abs_diff": diff, "atol": atol}
            task.advance(1)
            if verbose:
                print(f"parity: max |{fmt} - pytorch| = {diff:.3g} over {len(images)} images "
                      f"x {k} classes (tolerance {atol:g})")
        spec_path = path.with_name(path.name + ".json")
        spec_path.write_text(json.dumps(spec, indent=2) + "\n")
        if check and not diff <= atol:
            raise ParityError(f"{path}: exported model differs from PyTorch by {diff:.3g} "
                              f"(> {atol:g}) on {len(images)} images")
    finally:
        task.close()
        model.to(device).train(was_training)
    if verbose:
        print(f"exported {path} ({fmt}, input uint8 N×{shape[0]}×{shape[1]}×{shape[2]}, "
              f"{k} classes) and {spec_path.name}")
    return ExportResult(path, spec_path, fmt, diff, len(images) if check else 0,
                        time.perf_counter() - start)


# ---------------------------------------------------------------- loading

def is_exported(path) -> bool:
    """True for a file ``load_exported`` can open (by suffix; a model folder is not)."""
    p = Path(path)
    return p.is_file() and any(p.suffix.lower() in s for s in FORMATS.values())


def _read_spec(path: Path) -> dict:
    beside = path.with_name(path.name + ".json")
    if beside.is_file():
        return json.loads(beside.read_text())
    if path.suffix.lower() == ".onnx":
        import onnx

        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False)
                .metadata_props}
        if "cnnkit" in meta:
            return json.loads(meta["cnnkit"])
    else:
        extra = {"cnnkit.json": ""}
        _jit_load(path, extra)
        if extra["cnnkit.json"]:
            return json.loads(extra["cnnkit.json"])
    raise ValueError(f"{path}: no cnnkit export spec (expected {beside.name} beside it); "
                     "was it written by cnnkit.export?")


def _jit_load(path: Path, extra_files: dict | None = None):
    with warnings.catch_warnings():  # TorchScript is deprecated in favour of torch.export
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu", _extra_files=extra_files or {})


class ExportedModel:
    """A predictor over an exported file: ``predict(uint8 N×H×W×C) -> N×K probabilities``.

    Has ``class_names``, ``input_shape`` (H, W, C) and ``spec`` like a ``cnnkit.Model``, so
    ``cnnkit predict`` and the service can use either. ``model`` is None: no PyTorch module,
    so no Grad-CAM.
    """

    model = None

    def __init__(self, path, spec: dict | None = None, threads: int | None = None):
        self.path = Path(path)
        try:
            self._open(spec, threads)
        except (ImportError, ExportFileError):
            raise
        except Exception as err:  # noqa: BLE001 - whatever the runtime says: not a usable export
            kind = "ONNX" if self.path.suffix.lower() == ".onnx" else "TorchScript"
            why = " ".join(str(err).split()).split(". ")[0][:160]  # its first sentence
            raise ExportFileError(f"{self.path}: not a readable {kind} file written by cnnkit "
                                  f"export ({type(err).__name__}: {why}); export the model "
                                  f"again with `cnnkit export MODEL {self.path.name}`") from err

    def _open(self, spec: dict | None, threads: int | None) -> None:
        self.spec = spec or _read_spec(self.path)
        if self.spec.get("format") != SPEC_FORMAT or self.spec.get("version") != SPEC_VERSION:
            raise ValueError(f"{self.path}: unsupported export spec "
                             f"{self.spec.get('format')} v{self.spec.get('version')}")
        self.runtime = self.spec["runtime"]
        self.class_names = list(self.spec["class_names"])
        self.multi_label = bool(self.spec.get("multi_label"))
        self.thresholds = self.spec.get("thresholds")
        self.input_shape = tuple(self.spec["input"]["shape"][1:])
        self.name = self.spec.get("name", self.path.stem)
        if self.runtime == "onnx":
            import onnxruntime as ort

            opts = ort.SessionOptions()
            # default: the process's PyTorch threads (OMP_NUM_THREADS, or its share of the
            # cores), not ONNX Runtime's all-cores pool, which oversubscribes beside others
            opts.intra_op_num_threads = threads or torch.get_num_threads()
            self._session = ort.InferenceSession(str(self.path), opts,
                                                 providers=["CPUExecutionProvider"])
            self._run = lambda x: self._session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        else:
            module = _jit_load(self.path).eval()

            def run(x):
                with torch.inference_mode():
                    return module(torch.from_numpy(x)).numpy()
            self._run = run

    def _as_batch(self, images) -> tuple[np.ndarray, bool]:
        arr = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
        h, w, c = self.input_shape
        from .train.sanity import single_image_error
        wrong_size = single_image_error(arr.shape, (c, h, w), self.name)
        if wrong_size is not None:  # one image, not a batch: name the size it needs
            raise wrong_size
        if arr.ndim == 2 or (arr.ndim == 3 and arr.shape == (h, w, c)):
            arr, single = arr[None], True
        else:
            single = False
        if arr.ndim == 3 and c == 1:  # N×H×W grayscale
            arr = arr[..., None]
        if arr.dtype != np.uint8:
            arr = (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)  # floats taken as [0, 1]
        if arr.ndim != 4 or arr.shape[1:] != (h, w, c):
            raise ValueError(f"{self.path.name} takes uint8 N×{h}×{w}×{c} images (N×H×W×C), "
                             f"got {arr.shape}")
        return tensor_ready(arr), single

    def predict(self, images, batch_size: int = 64) -> np.ndarray:
        """Probabilities N×K (K for a single H×W×C image), as ``Model.predict``."""
        arr, single = self._as_batch(images)
        parts = [self._run(arr[i:i + batch_size]) for i in range(0, len(arr), batch_size)]
        out = np.concatenate(parts) if parts else np.zeros((0, len(self.class_names)),
                                                           np.float32)
        return out[0] if single else out

    __call__ = predict

    def __repr__(self):
        return (f"ExportedModel({str(self.path)!r}, runtime={self.runtime}, "
                f"input={self.input_shape}, classes={len(self.class_names)})")


def load_exported(path, spec: dict | None = None, threads: int | None = None) -> ExportedModel:
    """Open an exported ``.onnx`` / ``.pt`` file as a predictor (see ``ExportedModel``).

    ``threads``: ONNX Runtime's intra-op threads (default: ``torch.get_num_threads()``).
    """
    return ExportedModel(path, spec, threads)
