"""INT8 ONNX models: ONNX Runtime static quantization of a cnnkit export, measured.

:func:`quantize_int8` takes a float32 file from :func:`cnnkit.export.export` (uint8 N×H×W×C
pixels in, probabilities out, preprocessing inside) and writes ``<name>.int8.onnx`` beside it:

1. ``quant_pre_process`` (ORT's shape inference + graph optimisation before quantizing);
2. ``quantize_static`` in QDQ format, weights int8 per output channel, activations uint8
   (U8S8, ORT's choice for x86-64 CPUs), ranges from MinMax calibration on the given images
   (a few hundred training images, seeded: the preprocessing is inside the graph, so they
   go in as raw pixels). The final Softmax (what writes the output) stays float. On an
   x86-64 CPU without VNNI (AVX2 or plain AVX-512: Zen 3, Skylake) the weights take 7 bits
   (``reduce_range``, as ORT advises): there the u8 x s8 products are summed in pairs into
   saturating int16 (``vpmaddubsw``), and 8-bit weights overflow it (measured on a Zen 3:
   top-1 agreement 94% instead of 99%);
3. the parity check, looser than float's: the int8 model's top-1 class must agree with the
   float model's on at least ``min_agreement`` (default 0.95) of the calibration images,
   else ``ParityError`` (the files stay on disk for inspection);
4. with ``held_out=(images, labels)``: both models' accuracy on them and the delta;
5. speed: images/s of both ONNX Runtime sessions, same batch, same threads, in alternating
   rounds (so a busy machine slows both alike), median over the rounds.

Everything goes into the export spec beside the file (``model.int8.onnx.json``, key
``int8``) and the ONNX metadata, so ``load_exported``, ``cnnkit predict`` and ``cnnkit serve``
open the int8 file as they open the float one.

    float_file = export(model, "out/model.onnx").path
    result = quantize_int8(float_file, train_pixels[:300], held_out=(val_pixels, val_labels))
    print(result.summary())
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .export import INPUT_NAME, ParityError, _read_spec, load_exported

__all__ = ["quantize_int8", "Int8Result", "int8_path", "calibration_sample", "cpu_name",
           "run_images", "data_images", "int8_reduce_range"]

MIN_AGREEMENT = 0.95  # share of calibration images whose int8 top-1 class equals float's


@dataclass
class Int8Result:
    path: Path               # the int8 file
    spec_path: Path          # its JSON spec (with the "int8" section)
    float_path: Path         # the float32 file it was quantized from
    calibration_images: int
    agreement: float         # top-1 agreement with float32 on the calibration images
    float_accuracy: float | None  # on the held-out images (None without them)
    int8_accuracy: float | None
    held_out_images: int
    float_images_per_s: float
    int8_images_per_s: float
    batch_size: int
    threads: int
    cpu: str

    @property
    def accuracy_delta(self) -> float | None:
        """int8 - float32 accuracy (negative: the int8 model is worse)."""
        if self.float_accuracy is None or self.int8_accuracy is None:
            return None
        return self.int8_accuracy - self.float_accuracy

    @property
    def speedup(self) -> float:
        return self.int8_images_per_s / self.float_images_per_s

    def summary(self) -> str:
        acc = ""
        if self.float_accuracy is not None:
            acc = (f"accuracy float32 {self.float_accuracy:.4f}, int8 {self.int8_accuracy:.4f} "
                   f"(delta {self.accuracy_delta:+.4f}) on {self.held_out_images} held-out "
                   "images; ")
        return (f"int8: {acc}top-1 agreement with float32 {self.agreement:.2%} on "
                f"{self.calibration_images} calibration images; speed float32 "
                f"{self.float_images_per_s:.0f} images/s, int8 {self.int8_images_per_s:.0f} "
                f"images/s ({self.speedup:.2f}x; ONNX Runtime, batch {self.batch_size}, "
                f"{self.threads} thread(s), {self.cpu})")

    def to_json(self) -> dict:
        out = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}
        out.update(accuracy_delta=self.accuracy_delta, speedup=self.speedup)
        return out


def int8_path(float_path) -> Path:
    """``model.onnx`` -> ``model.int8.onnx`` (beside it)."""
    p = Path(float_path)
    return p.with_name(f"{p.stem}.int8{p.suffix or '.onnx'}")


def cpu_name() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def _nhwc(images, hwc: tuple[int, int, int] | None = None) -> np.ndarray:
    """uint8 N×C×H×W tensors (a run's splits) or N×H×W×C arrays -> N×H×W×C numpy."""
    arr = images.numpy() if hasattr(images, "numpy") else np.asarray(images)
    if arr.ndim == 4 and hwc is not None and arr.shape[1:] != tuple(hwc) and \
            arr.shape[1:] == (hwc[2], hwc[0], hwc[1]):
        arr = arr.transpose(0, 2, 3, 1)
    elif arr.ndim == 4 and hwc is None and arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(arr)


def calibration_sample(images, n: int = 300, seed: int = 0) -> np.ndarray:
    """``n`` images drawn without replacement (seeded), in their order, as uint8 N×H×W×C.

    ``images``: uint8 N×C×H×W tensors (a run's training split) or N×H×W×C arrays."""
    pick = np.sort(np.random.default_rng(seed).permutation(len(images))[:n])
    return _nhwc(images[pick] if hasattr(images, "numpy") else np.asarray(images)[pick])


def _calibration_reader(images: np.ndarray, batch: int = 32):
    """ORT's CalibrationDataReader over the calibration images, ``batch`` at a time."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._starts = iter(range(0, len(images), batch))

        def get_next(self):
            start = next(self._starts, None)
            return None if start is None else {INPUT_NAME: images[start:start + batch]}

    return Reader()


def _float_nodes(path: Path) -> list[str]:
    """Nodes left in float: the Softmax and whatever writes the graph's output (the
    probabilities keep their float resolution)."""
    import onnx

    graph = onnx.load(str(path)).graph
    outputs = {o.name for o in graph.output}
    return [n.name for n in graph.node if n.op_type == "Softmax" or outputs & set(n.output)]


VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")  # /proc/cpuinfo: int8 dot products


def int8_reduce_range(flags=None) -> bool:
    """Whether weights should take 7 bits on this CPU: an x86-64 CPU without VNNI, whose
    int8 products saturate int16 (module doc). ``flags``: CPU feature flags (default this
    x86-64 CPU's, ``perf.cpu_flags``; none known: False)."""
    if flags is None:
        if platform.machine().lower() not in ("x86_64", "amd64"):
            return False
        from .speed.perf import cpu_flags
        flags = cpu_flags()
    return bool(flags) and not set(flags) & set(VNNI_FLAGS)


def _quantize(float_path: Path, out: Path, images: np.ndarray, per_channel: bool,
              reduce_range: bool) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(float_path), str(pre))
        quantize_static(str(pre), str(out), _calibration_reader(images),
                        quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        reduce_range=reduce_range,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=_float_nodes(pre))


def _accuracy(probs: np.ndarray, labels) -> float:
    return float((probs.argmax(1) == np.asarray(labels)).mean())


def _images_per_s(models: list, images: np.ndarray, batch: int, rounds: int,
                  min_round_s: float) -> list[float]:
    """Images/s of each model on ``images``, in alternating rounds (median of the rounds)."""
    x = images[:batch] if len(images) >= batch else np.resize(images, (batch, *images.shape[1:]))
    for m in models:  # warm-up: first runs allocate
        m._run(x)
    rates: list[list[float]] = [[] for _ in models]
    for _ in range(rounds):
        for i, m in enumerate(models):
            n, start = 0, time.perf_counter()
            while True:
                m._run(x)
                n += 1
                elapsed = time.perf_counter() - start
                if elapsed >= min_round_s:
                    break
            rates[i].append(n * batch / elapsed)
    return [statistics.median(r) for r in rates]


def quantize_int8(float_path, calibration_images, output=None, *, held_out=None,
                  min_agreement: float = MIN_AGREEMENT, per_channel: bool = True,
                  threads: int | None = None, batch_size: int = 64, rounds: int = 5,
                  min_round_s: float = 0.5, held_out_from: str = "",
                  reduce_range: bool | None = None, verbose: bool = True) -> Int8Result:
    """Quantize the cnnkit ONNX export ``float_path`` to int8 and measure it (module doc).

    calibration_images: uint8 N×H×W×C (or N×C×H×W) raw pixels, e.g. a few hundred training
    images (:func:`calibration_sample`). output: default ``<name>.int8.onnx`` beside.
    held_out: ``(images, labels)`` for the accuracy of both models (``held_out_from`` says
    where they come from, for the spec). threads: ONNX Runtime
    intra-op threads for both sessions (default ``$CNNKIT_THREADS`` or ORT's own choice).
    reduce_range: 7-bit weights; default :func:`int8_reduce_range` (this CPU lacks VNNI).
    Raises ``ParityError`` when the top-1 agreement is below ``min_agreement``.
    """
    float_path = Path(float_path)
    out = Path(output) if output else int8_path(float_path)
    if float_path.suffix.lower() != ".onnx":
        raise ValueError(f"{float_path}: int8 quantization takes an ONNX export (.onnx), "
                         "not TorchScript; export with format='onnx' first")
    if not 0 <= min_agreement <= 1:
        raise ValueError(f"min_agreement must be in 0..1, got {min_agreement}")
    env_threads = os.environ.get("CNNKIT_THREADS", "").strip()
    threads = threads or (int(env_threads) if env_threads.isdigit() else None) or None
    reference = load_exported(float_path, threads=threads)
    h, w, c = reference.input_shape
    calib = _nhwc(calibration_images, (h, w, c))
    if calib.dtype != np.uint8 or calib.shape[1:] != (h, w, c) or not len(calib):
        raise ValueError(f"calibration images must be uint8 N×{h}×{w}×{c} raw pixels (N×H×W×C, "
                         f"N >= 1), got {calib.dtype} {calib.shape}")
    x = y = None
    if held_out is not None:
        x, y = _nhwc(held_out[0], (h, w, c)), np.asarray(held_out[1])
        if len(x) != len(y) or (len(x) and x.shape[1:] != (h, w, c)):
            raise ValueError(f"held_out must be (uint8 N×{h}×{w}×{c} images, N labels), got "
                             f"{x.shape} images and {len(y)} labels")
    n_held = 0 if x is None else len(x)
    if reduce_range is None:
        reduce_range = int8_reduce_range()
    say = print if verbose else (lambda *a, **k: None)
    say(f"int8: calibrating {out.name} on {len(calib)} images (ONNX Runtime static "
        f"quantization, QDQ, {'per-channel' if per_channel else 'per-tensor'} "
        f"{'7-bit (no VNNI here) ' if reduce_range else ''}weights)")
    _quantize(float_path, out, calib, per_channel, reduce_range)

    spec = dict(_read_spec(float_path), file=out.name)
    spec.pop("parity", None)
    quantized = load_exported(out, spec=spec, threads=threads)
    agreement = float((quantized.predict(calib).argmax(1) ==
                       reference.predict(calib).argmax(1)).mean())
    acc_f = acc_q = None
    if n_held:
        acc_f, acc_q = _accuracy(reference.predict(x), y), _accuracy(quantized.predict(x), y)
    say(f"int8: timing float32 and int8 (batch {batch_size}, alternating rounds)")
    rate_f, rate_q = _images_per_s([reference, quantized], calib, batch_size, rounds, min_round_s)
    n_threads = reference._session.get_session_options().intra_op_num_threads  # always set
    result = Int8Result(out, out.with_name(out.name + ".json"), float_path, len(calib),
                        agreement, acc_f, acc_q, n_held, rate_f, rate_q, batch_size,
                        int(n_threads), cpu_name())
    import onnxruntime

    spec["int8"] = {**result.to_json(), "min_agreement": min_agreement,
                    "held_out_from": held_out_from or None,
                    "reduce_range": reduce_range,
                    "format": f"QDQ, weights int8 {'per-channel' if per_channel else 'per-tensor'}"
                              f"{' in 7 bits' if reduce_range else ''}, activations uint8, "
                              "MinMax calibration; Softmax in float",
                    "onnxruntime": onnxruntime.__version__,
                    "note": "speed measured on this machine in alternating rounds; rough on "
                            "a shared machine"}
    for key in ("path", "spec_path", "float_path"):
        spec["int8"][key] = Path(spec["int8"][key]).name
    _write_metadata(out, spec)
    result.spec_path.write_text(json.dumps(spec, indent=2) + "\n")
    say(result.summary())
    say(f"exported {out} and {result.spec_path.name}")
    if agreement < min_agreement:
        raise ParityError(f"{out}: the int8 model's top class agrees with float32's on only "
                          f"{agreement:.1%} of {len(calib)} calibration images (< "
                          f"{min_agreement:.0%}); more or more varied calibration images may help, "
                          "or keep the float32 model")
    return result


def _write_metadata(path: Path, spec: dict) -> None:
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = "cnnkit", json.dumps(spec)
    onnx.save(proto, str(path))


def run_images(run_dir, n_calibration: int = 300, seed: int | None = None):
    """(calibration images, (held-out images, labels), where) from a run directory's data.

    The run's own config (data, split, seed, --limit) gives the same split it trained on:
    calibration images are drawn (seeded) from its training images, the held-out ones are
    what its final evaluation used (the test split, else the validation images)."""
    from .config import TrainConfig
    from .run.directory import RunDir

    run = RunDir(run_dir)
    if not run.is_run() or (run.path / "model.safetensors").is_file():  # a model folder
        raise ValueError(f"{run_dir}: not a run directory (no config.json); int8 calibration "
                         "needs a run's training images: pass --data NAME|PATH (or call "
                         "quantize_int8 from Python with your own images)")
    return data_images(TrainConfig.from_dict(run.read_json(run.config_json)), n_calibration, seed)


def data_images(cfg, n_calibration: int = 300, seed: int | None = None):
    """:func:`run_images` for the data a ``TrainConfig`` names (``cfg.data``, its split)."""
    from .run.data import load_data

    data = load_data(cfg.validate())
    seed = cfg.seed if seed is None else seed
    calib = calibration_sample(data.train[0], n_calibration, seed)
    where = (f"the {data.test_name} images of {data.source}" +
             (f" (held out, seed {cfg.seed})" if data.test is None else ""))
    return calib, data.eval_split, where
