"""(a) Seed 003's workload per epoch: cnnkit vs plain PyTorch loops vs Keras/TensorFlow.

The workload (shared/seeds/003): the tutorial's "simple-cnn" (Conv32-Pool-Conv64-Pool-
Dense64-Dense10, 167,562 parameters), Adam, categorical cross-entropy, batch 64, on the
50,000 CIFAR-10 training images: 782 steps per epoch, 10 epochs in the tutorial.

Contenders, all on this machine in this one run:

- cnnkit: the tutorial's Keras code written with cnnkit (``Sequential``, ``compile('adam')``,
  ``fit(x / 255, to_categorical(y), batch_size=64)``); fp32, and bf16 autocast as an extra
  row where the CPU multiplies bfloat16 natively.
- torch DataLoader: a plain PyTorch loop over a torchvision-style Dataset (PIL image per
  sample, ``ToTensor``), ``DataLoader(batch_size=64, shuffle=True)``, ``loss.item()`` per
  step as the tutorials do.
- torch tensor slices: a plain loop over slices of one float tensor, channels_last.
- Keras/TensorFlow: the tutorial itself, when TensorFlow imports here or in the interpreter
  given by ``--tf-python`` / ``$CNNKIT_TF_PYTHON``; otherwise skipped, and the issue's
  figure of 37-52 s per epoch on this machine is printed as a labelled reference.
- Keras on torch (Keras 3's API on PyTorch, cnnkit's nearest peer): the same script with
  ``import keras`` and ``KERAS_BACKEND=torch``, in the interpreter given by
  ``--keras-torch-python`` / ``$CNNKIT_KERAS_TORCH_PYTHON`` (a throw-away venv:
  ``python -m venv --system-site-packages kt && kt/bin/pip install keras``); skipped when
  ``keras`` does not import there.

To stay bounded each contender trains ``--steps`` batches (default 200) after a warm-up,
and seconds per epoch are extrapolated to 782 steps (said in the output). Contenders take
turns for ``--rounds`` rounds (the machine is shared: interleaving spreads the noise) and
the median round is reported. GFLOP/s counts 3x the forward multiply-adds x2 per training
image (forward + two backward products); the peak is an fp32 (and bf16) 2048^3 matmul
measured in this run with the same threads, before and after the rounds (the higher counts;
on a shared machine a fraction above 100% means the peak was taken while others were busy).

    python benchmarks/seed003_epoch.py                 # ~3-6 minutes on two cores
    python benchmarks/seed003_epoch.py --accuracy      # + 10 epochs of cnnkit, held-out acc
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

STEPS_PER_EPOCH = 782  # ceil(50,000 / 64)
BATCH = 64


# -- the workload, four ways ------------------------------------------------------------------
def keras_style_cnnkit(precision: str, float32_head: bool = False, jit_compile: bool = False):
    """The tutorial's model in cnnkit. ``float32_head``: the two Dense layers keep Keras's
    ``dtype='float32'`` policy while the convolutions (96% of the FLOPs) follow
    ``precision``; in bf16 that keeps fp32's accuracy here (see ``--accuracy``).
    ``jit_compile``: Keras's flag; cnnkit then runs the conv-relu-pool blocks' pooling as
    compiled kernels (``cnnkit.kernels``)."""
    from cnnkit import Sequential, layers
    head = "float32" if float32_head else None
    model = Sequential([
        layers.Input((32, 32, 3)),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(64, activation="relu", dtype=head),
        layers.Dense(10, activation="softmax", dtype=head),
    ], name="simple-cnn")
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"],
                  device="cpu", precision=precision, jit_compile=jit_compile)
    return model


def plain_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 6 * 6, 64), nn.ReLU(), nn.Linear(64, 10))


def train_flops_per_image(net: nn.Module) -> float:
    """3 x 2 x forward multiply-adds of the convs and dense layers for one 32x32x3 image."""
    macs = []

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            macs.append(out.numel() * k)
        elif isinstance(mod, nn.Linear):
            macs.append(out.numel() * mod.in_features)
    handles = [m.register_forward_hook(hook) for m in net.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        net(torch.zeros(1, 3, 32, 32))
    for h in handles:
        h.remove()
    return 3 * 2 * float(sum(macs))


class TorchvisionStyle(torch.utils.data.Dataset):
    """What torchvision.datasets.CIFAR10 does per sample: PIL image, then the transform."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        from torchvision import transforms
        self.x, self.y = x, y
        self.transform = transforms.ToTensor()

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        from PIL import Image
        return self.transform(Image.fromarray(self.x[i])), int(self.y[i])


class Contender:
    name = ""

    def setup(self, x: np.ndarray, y: np.ndarray): ...

    def run(self, steps: int) -> float:
        """Seconds for ``steps`` training steps of batch 64."""
        raise NotImplementedError


class CnnkitFit(Contender):
    def __init__(self, precision="fp32", float32_head=False, jit_compile=False):
        self.precision, self.float32_head, self.jit_compile = precision, float32_head, jit_compile
        self.name = "cnnkit fit" + {("bf16", False): " (bf16 autocast)",
                                    ("bf16", True): " (bf16 convs, fp32 dense)"}.get(
                                        (precision, float32_head), "") \
            + (" jit_compile" if jit_compile else "")

    def setup(self, x, y):
        from cnnkit.utils import to_categorical
        self.x = x.astype("float32") / 255.0  # as the tutorial does
        self.y = to_categorical(y, 10)
        self.model = keras_style_cnnkit(self.precision, self.float32_head, self.jit_compile)

    def run(self, steps):
        n = steps * BATCH
        t = time.perf_counter()
        self.model.fit(self.x[:n], self.y[:n], epochs=1, batch_size=BATCH, verbose=0)
        return time.perf_counter() - t


class TorchDataLoader(Contender):
    name = "torch DataLoader loop"

    def setup(self, x, y):
        self.net = plain_net()
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        self.loader = torch.utils.data.DataLoader(TorchvisionStyle(x, y), batch_size=BATCH,
                                                  shuffle=True, num_workers=0)

    def run(self, steps):
        self.net.train()
        running = 0.0
        t = time.perf_counter()
        for i, (xb, yb) in enumerate(self.loader):
            if i == steps:
                break
            self.opt.zero_grad()
            loss = nn.functional.cross_entropy(self.net(xb), yb)
            loss.backward()
            self.opt.step()
            running += loss.item()
        return time.perf_counter() - t


class TorchSlices(Contender):
    name = "torch tensor-slice loop"

    def setup(self, x, y):
        self.x = torch.from_numpy(x).permute(0, 3, 1, 2).float().div(255)
        self.x = self.x.contiguous(memory_format=torch.channels_last)
        self.y = torch.from_numpy(y)
        self.net = plain_net().to(memory_format=torch.channels_last)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)

    def run(self, steps):
        self.net.train()
        order = torch.randperm(len(self.x))
        t = time.perf_counter()
        for i in range(steps):
            idx = order[i * BATCH:(i + 1) * BATCH]
            self.opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(self.net(self.x[idx]), self.y[idx])
            loss.backward()
            self.opt.step()
        return time.perf_counter() - t


KERAS_MODEL = r"""
model = models.Sequential([
    layers.Input((32, 32, 3)),
    layers.Conv2D(32, (3, 3), activation='relu'), layers.MaxPooling2D((2, 2)),
    layers.Conv2D(64, (3, 3), activation='relu'), layers.MaxPooling2D((2, 2)),
    layers.Flatten(), layers.Dense(64, activation='relu'), layers.Dense(10, activation='softmax')])
model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])
"""

KERAS_SCRIPT = r"""
import json, sys, time, numpy as np
import tensorflow as tf
from tensorflow.keras import layers, models
d = np.load(sys.argv[1]); steps, warmup, rounds = (int(v) for v in sys.argv[2:5])
x = d["x"][: steps * 64].astype("float32") / 255.0
y = tf.keras.utils.to_categorical(d["y"][: steps * 64], 10)
KERAS_MODEL_HERE
model.fit(x[: warmup * 64], y[: warmup * 64], epochs=1, batch_size=64, verbose=0)
times = []
for _ in range(rounds):
    t = time.perf_counter()
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    times.append(time.perf_counter() - t)
print("RESULT " + json.dumps({"times": times, "tf": tf.__version__}))
""".replace("KERAS_MODEL_HERE\n", KERAS_MODEL)


# the same tutorial on Keras 3's torch backend (run with KERAS_BACKEND=torch)
KERAS_TORCH_SCRIPT = (KERAS_SCRIPT
                      .replace("import tensorflow as tf\nfrom tensorflow.keras import layers, models",
                               "import keras\nfrom keras import layers, models")
                      .replace("tf.keras.utils", "keras.utils")
                      .replace('"tf": tf.__version__',
                               '"tf": keras.__version__, "backend": keras.backend.backend()'))


def keras_torch_python(arg: str | None) -> str | None:
    """An interpreter where Keras 3 imports on its torch backend, or None."""
    for py in (arg, os.environ.get("CNNKIT_KERAS_TORCH_PYTHON"), sys.executable):
        if py and subprocess.run([py, "-c", "import keras, torch; assert keras.backend.backend() == 'torch'"],
                                 capture_output=True,
                                 env=dict(os.environ, KERAS_BACKEND="torch")).returncode == 0:
            return py
    return None


def keras_python(arg: str | None) -> str | None:
    """An interpreter where ``import tensorflow`` works, or None."""
    candidates = [arg, os.environ.get("CNNKIT_TF_PYTHON"), sys.executable]
    for py in candidates:
        if not py:
            continue
        ok = subprocess.run([py, "-c", "import tensorflow"], capture_output=True).returncode == 0
        if ok:
            return py
    return None


def run_keras(py: str, x: np.ndarray, y: np.ndarray, steps: int, warmup: int, rounds: int,
              backend: str = "tensorflow") -> dict:
    import tempfile
    script = KERAS_TORCH_SCRIPT if backend == "torch" else KERAS_SCRIPT
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "cifar.npz"
        np.savez(data, x=x, y=y)
        proc = subprocess.run([py, "-c", script, str(data), str(steps), str(warmup),
                               str(rounds)], capture_output=True, text=True,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND=backend))
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"Keras run failed: {proc.stderr[-2000:]}")


def matmul_peak(dtype=torch.float32, n=2048, reps=5) -> float:
    """Best GFLOP/s of an n^3 product, as a matmul (MKL) and as a 1x1 convolution (oneDNN).

    Both count: on AMD CPUs MKL's sgemm takes an AVX2 path (~160 GFLOP/s here) while oneDNN,
    which runs the convolutions, uses AVX-512 (~330 GFLOP/s), so the matmul alone would
    understate the peak the convolutions can reach.
    """
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    # the same product as a 1x1 convolution: n pixels (8 x 16 x 16) x n in -> n out channels
    img = torch.randn(8, n, 16, 16, dtype=dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(n, n, 1, 1, dtype=dtype)
    flop = 2 * n ** 3
    best = 0.0
    for f in (lambda: a @ b, lambda: torch.nn.functional.conv2d(img, w)):
        for _ in range(2):
            f()
        for _ in range(reps):
            t = time.perf_counter()
            f()
            best = max(best, flop / (time.perf_counter() - t) / 1e9)
    return best


KERAS_ACCURACY_SCRIPT = r"""
import json, sys, time, numpy as np
import tensorflow as tf
from tensorflow.keras import layers, models
d = np.load(sys.argv[1]); epochs, seed = int(sys.argv[2]), int(sys.argv[3])
tf.keras.utils.set_random_seed(seed)
x, vx = d["x"].astype("float32") / 255.0, d["vx"].astype("float32") / 255.0
y, vy = tf.keras.utils.to_categorical(d["y"], 10), tf.keras.utils.to_categorical(d["vy"], 10)
KERAS_MODEL_HERE
t = time.perf_counter()
model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
seconds = time.perf_counter() - t
acc = model.evaluate(vx, vy, verbose=0)[1]
print("RESULT " + json.dumps({"accuracy": float(acc), "seconds": seconds}))
""".replace("KERAS_MODEL_HERE\n", KERAS_MODEL)


def keras_accuracy(py: str, data: Path, epochs: int, seed: int) -> dict:
    proc = subprocess.run([py, "-c", KERAS_ACCURACY_SCRIPT, str(data), str(epochs), str(seed)],
                          capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"Keras accuracy run failed: {proc.stderr[-2000:]}")


def accuracy_check(epochs: int, precisions, seeds: int = 1, keras_py: str | None = None) -> dict:
    """Train each contender for ``epochs`` on 40k images, ``seeds`` times; held-out acc on 10k.

    cnnkit in each precision and (given ``keras_py``) the Keras tutorial itself, same split,
    same seeds; prints each run, then mean and standard deviation per contender.
    """
    import tempfile
    from cnnkit.utils import set_random_seed, to_categorical
    (x, y), (vx, vy) = _common.cifar10()
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "split.npz"
        if keras_py:
            np.savez(data, x=x, y=y, vx=vx, vy=vy)
        for seed in range(seeds):
            for label in precisions:
                precision, head = label.split("+")[0], "+fp32-dense" in label
                set_random_seed(seed)
                model = keras_style_cnnkit(precision, head, jit_compile=label.endswith("+jit"))
                t = time.perf_counter()
                model.fit(x.astype("float32") / 255.0, to_categorical(y, 10), epochs=epochs,
                          batch_size=BATCH, verbose=0, seed=seed)
                seconds = time.perf_counter() - t
                _, acc = model.evaluate(vx.astype("float32") / 255.0, to_categorical(vy, 10),
                                        verbose=0)
                runs.setdefault(f"cnnkit {label}", []).append(
                    {"seed": seed, "accuracy": acc, "seconds": seconds})
                print(f"  seed {seed} cnnkit {label}: {seconds:.0f}s, held-out accuracy "
                      f"{acc:.4f}  [{_common.load_note()}]", flush=True)
            if keras_py:
                r = keras_accuracy(keras_py, data, epochs, seed)
                runs.setdefault("Keras/TensorFlow", []).append({"seed": seed, **r})
                print(f"  seed {seed} Keras/TensorFlow: {r['seconds']:.0f}s, held-out accuracy "
                      f"{r['accuracy']:.4f}  [{_common.load_note()}]", flush=True)
    out = {}
    for name, rs in runs.items():
        accs = [r["accuracy"] for r in rs]
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        out[name] = {"runs": rs, "mean": statistics.fmean(accs), "sd": sd}
        print(f"  {name:26s} mean held-out accuracy {100 * out[name]['mean']:.2f}% "
              f"(sd {100 * sd:.2f}, {len(accs)} seeds)")
    for ref in ("Keras/TensorFlow", "cnnkit fp32"):
        if ref not in out:
            continue
        for name in out:
            if name.startswith("cnnkit") and name != ref:
                # same seeds: the paired difference, and its spread over the seeds
                diffs = [a["accuracy"] - b["accuracy"] for a, b in zip(out[name]["runs"], out[ref]["runs"])]
                sd = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
                print(f"  {name:26s} - {ref}: {100 * statistics.fmean(diffs):+.2f} points "
                      f"(sd {100 * sd:.2f} over {len(diffs)} seeds)")
    return out


def _short(name: str) -> str:
    """A cnnkit row's column label: 'cnnkit fit (bf16 convs, fp32 dense) jit_compile' ->
    'bf16/fp32-dense+jit'."""
    label = name.replace("cnnkit fit", "").replace("(bf16 autocast)", "bf16")
    label = label.replace("(bf16 convs, fp32 dense)", "bf16/fp32-dense")
    label = label.replace(" jit_compile", "+jit").strip()
    return label.replace("+jit", "fp32+jit") if label == "+jit" else (label or "fp32")


def timing_rounds(args, settings, x, y, py, flops, kt_py=None) -> dict:
    """Interleaved rounds of every contender on ``x, y`` (the steps and warm-up's images);
    prints the table and ratios, returns the figures."""
    # the peak is measured before and after the rounds; the higher (less disturbed) one counts
    peaks_before = (matmul_peak(torch.float32),
                    matmul_peak(torch.bfloat16) if settings["cpu_bf16"] else None)
    contenders: list[Contender] = [CnnkitFit("fp32"), CnnkitFit("fp32", jit_compile=True),
                                   TorchDataLoader(), TorchSlices()]
    if settings["cpu_bf16"]:
        contenders[2:2] = [CnnkitFit("bf16"), CnnkitFit("bf16", float32_head=True),
                           CnnkitFit("bf16", float32_head=True, jit_compile=True)]
    for c in contenders:
        c.setup(x, y)
        warm = c.run(args.warmup)
        if getattr(c, "jit_compile", False):  # compiling happens in the warm-up: say its cost
            print(f"  {c.name}: warm-up {args.warmup} steps incl. compiling {warm:.1f}s", flush=True)
    times: dict[str, list[float]] = {c.name: [] for c in contenders}
    keras = None
    loads = []
    for r in range(args.rounds):
        for c in contenders:
            times[c.name].append(c.run(args.steps))
        if py:  # interleaved with the others, so every contender sees the same load
            keras = run_keras(py, x, y, args.steps, args.warmup, 1)
            times.setdefault(f"Keras/TensorFlow {keras['tf']}", []).extend(keras["times"])
        if kt_py:  # Keras 3's API on PyTorch
            kt = run_keras(kt_py, x, y, args.steps, args.warmup, 1, backend="torch")
            times.setdefault(f"Keras {kt['tf']} on torch", []).extend(kt["times"])
        loads.append(os.getloadavg()[0])
        print(f"  round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items())
              + f"  [load {loads[-1]:.2f}]", flush=True)

    peak32 = max(peaks_before[0], matmul_peak(torch.float32))
    peak16 = max(peaks_before[1], matmul_peak(torch.bfloat16)) if settings["cpu_bf16"] else None
    rows = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        per_epoch = med * STEPS_PER_EPOCH / args.steps
        ips = args.steps * BATCH / med
        gflops = ips * flops / 1e9
        peak = peak16 if "bf16" in name else peak32
        rows[name] = {"s_per_epoch": per_epoch, "images_per_s": ips, "gflops": gflops,
                      "peak_fraction": gflops / peak, "rounds_s": ts}
    print(f"\ntraining FLOPs per image {flops / 1e6:.1f} M; peak (best of MKL matmul, oneDNN 1x1 conv) fp32 {peak32:.0f} GFLOP/s"
          + (f", bf16 {peak16:.0f} GFLOP/s" if peak16 else ""))
    print(f"{'contender':48s} {'s/epoch':>8s} {'images/s':>9s} {'GFLOP/s':>8s} {'of peak':>8s}")
    for name, r in rows.items():
        print(f"{name:48s} {r['s_per_epoch']:8.1f} {r['images_per_s']:9.0f} {r['gflops']:8.1f} "
              f"{100 * r['peak_fraction']:7.1f}%")
    if keras is None:
        print(f"{'Keras/TensorFlow (issue figure)':48s} {'37-52':>8s}   (reference, not measured here)")
    ours = [n for n in rows if n.startswith("cnnkit")]
    others = [n for n in rows if not n.startswith("cnnkit")]
    print("\nsame-run ratios (their s/epoch / cnnkit's; > 1 means cnnkit is faster):")
    labels = {n: _short(n) for n in ours}
    w = max(len(v) for v in labels.values()) + 2
    print(f"  {'':50s}" + "".join(f"{labels[n]:>{w}s}" for n in ours))
    for name in others + ours[1:]:
        print(f"  {name:50s}" + "".join(
            f"{rows[name]['s_per_epoch'] / rows[n]['s_per_epoch']:{w - 1}.2f}x" for n in ours))
    # Rounds are interleaved, so each round's ratio compares contenders under the same load;
    # their median is the paired estimate, less sensitive to the machine's slow spells.
    print("  paired: median over rounds of that round's ratio")
    for name in others:
        paired = rows[name]["paired_ratios"] = {n: statistics.median(
            a / b for a, b in zip(rows[name]["rounds_s"], rows[n]["rounds_s"])) for n in ours}
        print(f"  {name:50s}" + "".join(f"{paired[n]:{w - 1}.2f}x" for n in ours))
    if keras is None:
        print(f"  {'Keras/TensorFlow (issue 37-52 s)':50s}" + "".join(
            f"{37 / rows[n]['s_per_epoch']:{w - 6}.2f}-{52 / rows[n]['s_per_epoch']:.2f}x" for n in ours)
              + "  (reference figure, not this run)")
    print(f"load during the rounds: {', '.join(f'{v:.2f}' for v in loads)}; {_common.load_note()}")
    return {"rows": rows, "loads": loads, "peak_fp32": peak32, "peak_bf16": peak16}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: physical cores)")
    ap.add_argument("--tf-python", default=None, help="an interpreter with TensorFlow installed")
    ap.add_argument("--keras-torch-python", default=None,
                    help="an interpreter with keras 3 beside torch (Keras on its torch backend)")
    ap.add_argument("--no-keras", action="store_true")
    ap.add_argument("--accuracy", action="store_true",
                    help="also train 10 epochs (cnnkit fp32/bf16 and Keras), held-out accuracy")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per contender for --accuracy")
    ap.add_argument("--accuracy-only", action="store_true", help="skip the timing rounds")
    ap.add_argument("--accuracy-rows", default=None,
                    help="cnnkit rows for --accuracy, comma-separated (default: fp32,bf16,"
                         "bf16+fp32-dense,bf16+fp32-dense+jit where bf16 is native)")
    ap.add_argument("--json", default=None, help="write the figures here")
    args = ap.parse_args(argv)

    from cnnkit import perf
    settings = perf.configure("cpu", threads=args.threads)
    (x, y), _ = _common.cifar10()  # 40,000 training images, class by class
    # a fixed shuffle, so the first steps*64 images used hold every class (fit refuses a
    # single-class set, and the tutorial trains on shuffled data)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    need = (args.steps + args.warmup) * BATCH
    if len(x) < need:
        ap.error(f"--steps + --warmup need {need} images; there are {len(x)}")
    print(f"seed 003 workload: simple-cnn, Adam, batch {BATCH}; {args.steps} steps timed per "
          f"round after {args.warmup} warm-up steps, x{STEPS_PER_EPOCH / args.steps:.2f} -> one epoch "
          f"of {STEPS_PER_EPOCH} steps; median of {args.rounds} interleaved rounds")
    print(f"torch {torch.__version__}, {settings['threads']} threads, {settings['physical_cores']} "
          f"physical cores, {settings['cpu_capability']}, native bf16: {settings['cpu_bf16']}; "
          f"{_common.load_note()}", flush=True)

    py = None if args.no_keras else keras_python(args.tf_python)
    if py:
        print(f"  Keras/TensorFlow via {py}: a fresh process each round (import and warm-up "
              "untimed)", flush=True)
    elif not args.no_keras:
        print("  Keras/TensorFlow: skipped (TensorFlow does not import here; pass --tf-python)")
    kt_py = None if args.no_keras else keras_torch_python(args.keras_torch_python)
    print(f"  Keras on torch via {kt_py}: a fresh process each round" if kt_py else
          "  Keras on torch: skipped (no interpreter where keras imports with KERAS_BACKEND=torch;"
          " pass --keras-torch-python)", flush=True)
    flops = train_flops_per_image(plain_net())
    timing = None if args.accuracy_only else timing_rounds(args, settings, x[:need], y[:need],
                                                               py, flops, kt_py)
    acc = None
    if args.accuracy:
        print(f"\naccuracy (same workload, 10 epochs, 40,000 train / 10,000 held out, "
              f"{args.seeds} seeds):")
        rows = args.accuracy_rows.split(",") if args.accuracy_rows else ["fp32"] + (
            ["bf16", "bf16+fp32-dense", "bf16+fp32-dense+jit"] if settings["cpu_bf16"] else [])
        acc = accuracy_check(10, rows, seeds=args.seeds, keras_py=py)
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": settings, "steps": args.steps,
                                               "timing": timing, "accuracy": acc,
                                               "flops_per_image": flops}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
