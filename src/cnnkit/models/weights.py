"""Pretrained weights: where they come from, where they are cached, how they load.

``resolve_weights(spec, ...)`` turns what a user wrote (``'imagenet'``, a torchvision tag such as
``'IMAGENET1K_V2'``, a path to a ``.pth`` state dict or a ``.safetensors`` file) into a state dict.

- Named weights are torchvision's published files. They are downloaded once into the cache
  (``$CNNKIT_CACHE/weights``, default ``~/.cache/cnnkit/weights``) and checked against the
  SHA-256 prefix that torchvision publishes in the file name (``resnet50-11ad3fa6.pth``).
  A copy already in torch's own hub cache is reused. ``$CNNKIT_WEIGHTS_MIRROR`` replaces the
  download host (for a company mirror, or for tests).
- Downloads go through ``cnnkit.data.download`` (the one place that opens connections).
  ``CNNKIT_OFFLINE=1``, or a failed download, with nothing cached raises
  :class:`WeightsUnavailableError`, which names the file, where it comes from and where to put it.
- Local ``.pth`` files load with ``torch.load(weights_only=True)`` (no pickle code runs).
- :func:`load_into` checks every key, shape and dtype before loading and raises
  :class:`WeightsMismatchError` listing what disagrees.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import torch
from torch import nn

log = logging.getLogger("cnnkit")

TORCHVISION_HOST = "https://download.pytorch.org/models/"
_HASH_RE = re.compile(r"-([a-f0-9]{6,})\.")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsError(RuntimeError):
    """Base class of the weight errors below."""


class WeightsUnavailableError(WeightsError, FileNotFoundError):
    """Named weights are neither cached nor downloadable (offline, blocked, bad checksum): a
    file that is not there, so callers that turn a missing file into one line do so here."""


class WeightsMismatchError(WeightsError, ValueError):
    """A state dict does not fit the model: keys missing or unexpected, or shapes differ."""


@dataclass(frozen=True)
class WeightSpec:
    """One published weight file."""

    arch: str  # registry name, e.g. "resnet50"
    tag: str  # torchvision tag, e.g. "IMAGENET1K_V2"
    url: str
    num_classes: int = 1000
    input_size: int = 224  # the crop size the weights were trained/evaluated at
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    acc1: float | None = None  # published ImageNet top-1, for information

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def sha256_prefix(self) -> str | None:
        m = _HASH_RE.search(self.filename)
        return m.group(1) if m else None


def cache_dir() -> Path:
    """Folder holding downloaded weights: ``$CNNKIT_CACHE/weights`` or ``~/.cache/cnnkit/weights``."""
    root = os.environ.get("CNNKIT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "cnnkit")
    return Path(root) / "weights"


def torchvision_weights(arch: str) -> dict[str, WeightSpec]:
    """All torchvision-published weights of ``arch`` keyed by tag, plus ``'DEFAULT'``."""
    from torchvision.models import get_model_weights

    enum = get_model_weights(arch)
    out: dict[str, WeightSpec] = {}
    for w in enum:
        kw = getattr(w.transforms, "keywords", {}) or {}
        metrics = w.meta.get("_metrics", {}).get("ImageNet-1K", {})
        out[w.name] = WeightSpec(
            arch=arch,
            tag=w.name,
            url=w.url,
            num_classes=len(w.meta.get("categories") or ()) or 1000,
            input_size=int(kw.get("crop_size", 224)),
            acc1=metrics.get("acc@1"),
        )
    out["DEFAULT"] = out[enum.DEFAULT.name]
    return out


def named_spec(arch: str, name: str) -> WeightSpec:
    """The spec for ``weights=name`` ('imagenet', 'DEFAULT' or a torchvision tag) of ``arch``."""
    table = torchvision_weights(arch)
    key = "DEFAULT" if name.lower() in ("imagenet", "default", "pretrained") else name.upper()
    if key not in table:
        tags = ", ".join(["'imagenet'"] + [repr(t) for t in table if t != "DEFAULT"])
        raise ValueError(f"{arch} has no weights called {name!r}; choose one of {tags}, None, or a file path")
    return table[key]


def _download_url(spec: WeightSpec) -> str:
    mirror = os.environ.get("CNNKIT_WEIGHTS_MIRROR")
    if mirror and spec.url.startswith(TORCHVISION_HOST):
        return mirror.rstrip("/") + "/" + spec.url[len(TORCHVISION_HOST):]
    return spec.url


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _torch_hub_copy(filename: str) -> Path | None:
    try:
        p = Path(torch.hub.get_dir()) / "checkpoints" / filename
    except Exception:  # pragma: no cover - torch.hub misconfigured
        return None
    return p if p.is_file() else None


def download(url: str, dest: Path, sha256_prefix: str | None = None, progress: bool = True,
             timeout: float = 30.0, deadline_s: float | None = None) -> Path:
    """Download ``url`` to ``dest`` atomically, checking the SHA-256 prefix when given.

    The bytes come through :func:`cnnkit.data.download.download` (the one place that opens
    connections: the offline switch, per-read ``timeout`` and overall ``deadline_s``)."""
    from ..data.download import DEFAULT_DEADLINE_S, ChecksumError
    from ..data.download import download as fetch_url
    try:
        return fetch_url(url, dest, sha256_prefix=sha256_prefix, timeout=timeout, quiet=not progress,
                         deadline_s=DEFAULT_DEADLINE_S if deadline_s is None else deadline_s)
    except ChecksumError as e:
        raise WeightsUnavailableError(
            f"checksum mismatch for {dest.name} from {url}: expected SHA-256 starting "
            f"{sha256_prefix}; the download is corrupt or the file was replaced. Nothing was "
            "saved; try again.") from e


def fetch(spec: WeightSpec, progress: bool = True) -> Path:
    """Path of ``spec``'s file in the cache, downloading (and checking) it on first use."""
    from ..data.download import OFFLINE_ENV, DownloadError, OfflineError
    dest = cache_dir() / spec.filename
    if dest.is_file():
        return dest
    hub = _torch_hub_copy(spec.filename)
    if hub is not None and (spec.sha256_prefix is None or _sha256(hub).startswith(spec.sha256_prefix)):
        log.info("using %s from torch's hub cache", hub)
        return hub
    url = _download_url(spec)
    supply = (f"download {spec.url} elsewhere and put it at {dest} (the cache folder is set by "
              f"CNNKIT_CACHE), or pass weights='/path/to/{spec.filename}', or weights=None to "
              "start from random weights")
    log.info("downloading %s weights %s from %s to %s", spec.arch, spec.tag, url, dest)
    try:
        return download(url, dest, spec.sha256_prefix, progress=progress)
    except OfflineError as e:
        raise WeightsUnavailableError(
            f"{spec.filename} ({spec.arch} {spec.tag} weights) is not in the cache and {OFFLINE_ENV} "
            f"forbids downloading it: {supply}") from e
    except (DownloadError, OSError) as e:
        reason = str(e).replace("\n", " ")
        raise WeightsUnavailableError(
            f"cannot download {spec.filename} ({spec.arch} {spec.tag} weights) from {url}: {reason}. "
            f"If this machine is offline, {supply}") from e


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors``, a ``.pth/.pt`` state dict, or a saved cnnkit model folder."""
    p = Path(path).expanduser()
    if p.is_dir():
        if (p / "model.safetensors").is_file():
            p = p / "model.safetensors"
        else:
            raise FileNotFoundError(f"{p} is a folder without model.safetensors; pass a weights file")
    if not p.is_file():
        raise FileNotFoundError(f"weights file not found: {p}")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(p), device="cpu")
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(
            f"cannot read {p} as a state dict ({type(e).__name__}: {_torch_load_reason(e)}). cnnkit "
            f"loads .pth files with torch.load(weights_only=True), which runs no pickled code: save "
            f"with torch.save(model.state_dict(), path), or use .safetensors"
        ) from e
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]  # common checkpoint layout {"state_dict": ..., "epoch": ...}
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{p} does not hold a state dict (a mapping of names to tensors)")
    return dict(obj)


def _torch_load_reason(e: Exception) -> str:
    """One line from torch.load's error: for a refused pickle, the object it refused."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    code = [ln for ln in lines if "GLOBAL" in ln]
    if code:  # a pickle that names a function or class to call
        return f"it names code to run, which was not run: {code[0]}"
    named = [ln for ln in lines if ln.startswith("Unsupported")]
    return named[0] if named else (lines[0] if lines else type(e).__name__)


def _align_prefix(sd: dict[str, torch.Tensor], target: Iterable[str]) -> dict[str, torch.Tensor]:
    """Strip a prefix shared by every key (``module.`` from DataParallel, ``module.`` of a saved
    cnnkit Model) when that makes the keys match the target better."""
    target = set(target)
    best, best_hits = sd, len(target & set(sd))
    prefixes = {k.split(".", 1)[0] + "." for k in sd if "." in k}
    for pre in prefixes:
        cand = {k[len(pre):]: v for k, v in sd.items() if k.startswith(pre)}
        hits = len(target & set(cand))
        if hits > best_hits:
            best, best_hits = cand, hits
    return best


def _short_list(items: list[str], n: int = 8) -> str:
    shown = ", ".join(items[:n])
    return shown + (f", ... and {len(items) - n} more" if len(items) > n else "")


def compare_state_dicts(model_sd: Mapping[str, torch.Tensor], file_sd: Mapping[str, torch.Tensor],
                        ignore: Iterable[str] = ()) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, shape mismatches) of ``file_sd`` against ``model_sd``."""
    ign = tuple(ignore)
    skip = lambda k: any(k == i or k.startswith(i + ".") for i in ign)  # noqa: E731
    missing = [k for k in model_sd if k not in file_sd and not skip(k)]
    unexpected = [k for k in file_sd if k not in model_sd and not skip(k)]
    shapes = [
        f"{k}: file {tuple(file_sd[k].shape)} vs model {tuple(model_sd[k].shape)}"
        for k in model_sd
        if k in file_sd and not skip(k) and tuple(file_sd[k].shape) != tuple(model_sd[k].shape)
    ]
    return missing, unexpected, shapes


def dtype_mismatches(model_sd: Mapping[str, torch.Tensor], file_sd: Mapping[str, torch.Tensor],
                     ignore: Iterable[str] = ()) -> list[str]:
    """``'name: file int8 vs model float32'`` for each tensor both hold in different dtypes.

    Every weights load (``load_model``, ``load_weights``, zoo weights, checkpoints) refuses
    these: ``load_state_dict`` would cast silently (int8 codes read as float weights)."""
    ign = tuple(ignore)
    name = lambda d: str(d).removeprefix("torch.")  # noqa: E731
    return [f"{k}: file {name(file_sd[k].dtype)} vs model {name(ref.dtype)}"
            for k, ref in model_sd.items()
            if k in file_sd and not any(k == i or k.startswith(i + ".") for i in ign)
            and file_sd[k].dtype != ref.dtype]


def load_into(module: nn.Module, state_dict: Mapping[str, torch.Tensor], *, ignore: Iterable[str] = (),
              source: str = "weights", arch: str | None = None) -> None:
    """Load ``state_dict`` into ``module``, all keys and shapes checked; ``ignore`` names key
    prefixes (e.g. the classifier being replaced) that are neither required nor loaded."""
    ignore = tuple(ignore)
    model_sd = module.state_dict()
    sd = _align_prefix(dict(state_dict), model_sd.keys())
    missing, unexpected, shapes = compare_state_dicts(model_sd, sd, ignore)
    dtypes = dtype_mismatches(model_sd, sd, ignore)
    if missing or unexpected or shapes or dtypes:
        what = f"the {arch} model" if arch else "the model"
        lines = [f"{source} does not fit {what}:"]
        if shapes:
            lines.append(f"  {len(shapes)} shape(s) disagree: {_short_list(shapes)}")
        if dtypes:
            lines.append(f"  {len(dtypes)} dtype(s) disagree (not cast): {_short_list(dtypes)}; "
                         "convert the file's tensors to the model's dtypes first")
        if missing:
            lines.append(f"  {len(missing)} key(s) the model needs are not in the file: {_short_list(missing)}")
        if unexpected:
            lines.append(f"  {len(unexpected)} key(s) in the file are not in the model: {_short_list(unexpected)}")
        hint = _hint(shapes, missing, unexpected)
        if hint:
            lines.append("  " + hint)
        raise WeightsMismatchError("\n".join(lines))
    keep = {k: v for k, v in sd.items() if not any(k == i or k.startswith(i + ".") for i in ignore)}
    module.load_state_dict(keep, strict=not ignore)


def _hint(shapes: list[str], missing: list[str], unexpected: list[str]) -> str:
    head = ("fc.", "classifier", "head")
    if shapes and not missing and not unexpected and all(s.startswith(head) for s in shapes):
        return ("only the classifier differs: the file was trained for another number of classes. "
                "To reuse its features with a new head, use cnnkit.transfer(name, num_classes, weights=path).")
    if missing or unexpected:
        return "the file is for another architecture (or another depth or width) than this one."
    return "the file is for another input size, width or channel count than this model was built for."


def copy_to_cache(path: str | os.PathLike, spec: WeightSpec) -> Path:
    """Put a manually downloaded file where :func:`fetch` looks for it (checking its checksum)."""
    src = Path(path)
    if spec.sha256_prefix and not _sha256(src).startswith(spec.sha256_prefix):
        raise WeightsUnavailableError(f"{src} is not {spec.filename}: its SHA-256 does not start with {spec.sha256_prefix}")
    dest = cache_dir() / spec.filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return dest
