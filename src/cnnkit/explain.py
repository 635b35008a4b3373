"""Look inside a CNN: Grad-CAM heatmaps, feature maps, first-layer filters.

Works on any ``torch.nn.Module`` that maps an N×C×H×W batch to class scores. A
``cnnkit.Model`` takes uint8 pixels (its ``preprocess`` scales them); a plain module without
``preprocess`` gets uint8 images scaled to [0, 1] here.

Images: a numpy array is H×W×C or H×W (Keras layout), a torch tensor is C×H×W or H×W;
uint8 pixels or floats in [0, 1].

    heat = grad_cam(model, image)                 # H×W float32 in [0, 1]
    png = overlay(image, heat)                    # H×W×3 uint8
    maps = feature_maps(model, image, "conv2d")   # C×h×w float32
    plot_filters(model, "filters.png")
    save_explanations(model, images, "out/", class_names=names)
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["grad_cam", "explain", "Explanation", "class_scores", "find_target_layer", "overlay",
           "layer_label",
           "feature_maps", "plot_feature_maps", "plot_filters", "save_explanations",
           "explain_files"]


# ---------------------------------------------------------------- inputs and outputs

def tensor_ready(arr: np.ndarray) -> np.ndarray:
    """A C-contiguous, writable array (``torch.from_numpy`` warns on read-only ones, such as
    arrays that view a decoded image's buffer); copies only when needed."""
    return np.ascontiguousarray(arr) if arr.flags.writeable else arr.copy(order="C")


def _to_chw(image) -> torch.Tensor:
    """One image -> C×H×W tensor (dtype kept)."""
    if isinstance(image, np.ndarray):
        t = torch.from_numpy(tensor_ready(image))
        if t.ndim == 3:
            t = t.permute(2, 0, 1)  # H×W×C -> C×H×W
    elif isinstance(image, torch.Tensor):
        t = image.detach()
    else:
        raise TypeError(f"expected a numpy array or a torch tensor, got {type(image).__name__}")
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.ndim != 3:
        raise ValueError("expected one image (H×W×C, C×H×W or H×W), "
                         f"got shape {tuple(t.shape)}")
    return t


def _to_batch(images) -> torch.Tensor:
    """An image, a list of images, or an N×H×W×C array / N×C×H×W tensor -> N×C×H×W."""
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return torch.from_numpy(tensor_ready(images)).permute(0, 3, 1, 2)
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        return images.detach()
    if isinstance(images, (list, tuple)):
        return torch.stack([_to_chw(im) for im in images])
    return _to_chw(images).unsqueeze(0)


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def scaled_input(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What ``model`` takes for pixels ``x``: a cnnkit.Model scales uint8 in its own
    ``preprocess``; a plain module gets uint8 scaled to floats in [0, 1] here."""
    if not hasattr(model, "preprocess") and x.dtype == torch.uint8:
        x = x.float() * (1.0 / 255.0)
    return x


def _model_input(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return scaled_input(model, x).to(_device(model))


def class_scores(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores, probabilities), both N×K, for a model input batch.

    scores are what Grad-CAM differentiates: logits (``forward_logits`` when the model has it,
    else the output of a model whose ``output_activation`` is None) or, for a model that only
    gives probabilities, those. A one-unit sigmoid output becomes two classes [not, is].
    Export uses the probabilities as its graph output.
    """
    fn = getattr(model, "forward_logits", None)
    act = getattr(model, "output_activation", None)
    if callable(fn):
        scores, act = fn(x), None
    else:
        scores = model(x)
    if scores.ndim != 2:
        raise ValueError("the model must output N×classes scores, "
                         f"got shape {tuple(scores.shape)}")
    if scores.shape[1] == 1:  # binary: one logit z or one probability p of the positive class
        if act == "sigmoid":
            return torch.cat([1 - scores, scores], 1), torch.cat([1 - scores, scores], 1)
        scores = torch.cat([-scores / 2, scores / 2], 1)  # softmax of this = [σ(-z), σ(z)]
        return scores, torch.softmax(scores, 1)
    if act in ("softmax", "sigmoid"):
        return scores, scores
    return scores, torch.softmax(scores, 1)


def _display_image(image) -> np.ndarray:
    """Any accepted image -> uint8 H×W×3 for pictures."""
    t = _to_chw(image)
    if t.is_floating_point():
        t = (t.float().clamp(0, 1) * 255).round().to(torch.uint8)
    arr = t.permute(1, 2, 0).cpu().numpy()
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3].astype(np.uint8))


# ---------------------------------------------------------------- choosing a layer

def _conv_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def _zoo_block_name(features: nn.Module, parts: list[str], module: nn.Module) -> str | None:
    """``features.2`` of a zoo net -> ``block2`` (its 2nd child holding a conv), and a conv
    inside it -> ``block2_conv1``, as Keras names VGG's layers. A child without a conv (the
    activation after a bare conv) is named after the block before it; None before any block."""
    children = list(features.named_children())
    blocks = [c for _, c in children if any(isinstance(m, nn.Conv2d) for m in c.modules())]
    at = next((i for i, (n, _) in enumerate(children) if n == parts[1]), None)
    if at is None:
        return None
    child = children[at][1]
    if not any(child is b for b in blocks):
        before = [c for _, c in children[:at] if any(c is b for b in blocks)]
        return f"block{len(before)}" if before else None
    name = f"block{next(i for i, b in enumerate(blocks, 1) if b is child)}"
    convs = [m for m in child.modules() if isinstance(m, nn.Conv2d)]
    inside = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if not inside and len(parts) > 2:  # an activation inside the block: the conv before it
        order = list(child.modules())
        at_module = next((i for i, m in enumerate(order) if m is module), 0)
        inside = [m for m in order[:at_module] if isinstance(m, nn.Conv2d)]
    if len(parts) == 2 or not inside:
        return name
    return f"{name}_conv{next(i for i, c in enumerate(convs, 1) if c is inside[-1])}"


def layer_label(model: nn.Module, path: str) -> str:
    """The layer at module ``path`` as the user knows it: a Keras-facade layer's own name
    (``conv2d_1``), a zoo net's block (``block3``, ``block2_conv1``), else the path inside the
    user's own module (``features.2``, ``layer4``), without cnnkit's ``module.`` wrapper."""
    modules = dict(model.named_modules())
    module = modules.get(path)
    own = getattr(module, "name", None)
    if path and isinstance(own, str) and own:
        return own
    wrapped = hasattr(model, "preprocess") and path.startswith("module.")
    inner = path[len("module."):] if wrapped else path
    parts = inner.split(".")
    from .models.transfer import ZooModel
    features = modules.get(("module." if wrapped else "") + "features")
    if isinstance(model, ZooModel) and parts[0] == "features" and len(parts) >= 2 \
            and features is not None:
        return _zoo_block_name(features, parts, module) or inner
    return inner


def _layer_name(model: nn.Module, path: str, module: nn.Module) -> str:
    return layer_label(model, path) if path else path


def _resolve_layer(model: nn.Module, layer) -> tuple[str, nn.Module]:
    """``layer``: a module, a module path from ``named_modules()``, a Keras layer name, or a
    name ``layer_label`` gives (``block3``, ``features.2`` for ``module.features.2``)."""
    for path, m in model.named_modules():
        if m is layer or path == layer:
            return _layer_name(model, path, m), m
    if isinstance(layer, nn.Module):
        raise ValueError("layer is not a submodule of the model")
    for path, m in model.named_modules():
        if path and getattr(m, "name", None) == layer:
            return layer, m
    for path, m in model.named_modules():
        if path and layer_label(model, path) == layer:
            return layer, m
    labels = [layer_label(model, p) for p in _conv_names(model)]
    raise ValueError(f"no layer named {layer!r}; conv layers: {labels}")


def _declared_layer(model: nn.Module) -> nn.Module | None:
    """The layer the network itself names for Grad-CAM (the zoo's ``feature_layer()``).

    A ``cnnkit.Model`` asks its wrapped module; its own fallback (the last Conv2d, before the
    activation) is not used: ``find_target_layer`` follows the data flow instead.
    """
    inner = getattr(model, "module", None)
    owner = inner if isinstance(inner, nn.Module) else model
    if owner is model and hasattr(model, "preprocess"):  # a cnnkit.Model without a module
        return None
    finder = getattr(owner, "feature_layer", None)
    found = finder() if callable(finder) else None
    return found if isinstance(found, nn.Module) else None


@contextmanager
def _hooked(model: nn.Module, hooks):
    """Eval mode and forward hooks ``[(module, fn), ...]`` for the block; both undone after."""
    was_training = model.training
    handles = [m.register_forward_hook(fn) for m, fn in hooks]
    model.eval()
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


def _trace(model: nn.Module, image) -> list[tuple[str, tuple, bool]]:
    """(module path, output shape, is a Conv2d) of every submodule call, in execution order."""
    calls: list[tuple[str, tuple, bool]] = []

    def record(name):
        return lambda mod, inp, out: calls.append(
            (name, tuple(out.shape) if isinstance(out, torch.Tensor) else (),
             isinstance(mod, nn.Conv2d)))

    with _hooked(model, [(m, record(n)) for n, m in model.named_modules() if n]):
        with torch.no_grad():
            model(_model_input(model, _to_batch(image)[:1]))
    return calls


def _settled(calls, i: int) -> str:
    """The conv call ``i`` extended over the modules right after it that keep its output shape
    and are not convs: its activation, BatchNorm, the block or stage that ends there."""
    j = i
    while j + 1 < len(calls) and calls[j + 1][1] == calls[i][1] and not calls[j + 1][2]:
        j += 1
    return calls[j][0]


def find_target_layer(model: nn.Module, image, which: str = "last") -> str:
    """The conv layer ``explain`` (``which='last'``) or ``feature_maps`` (``'first'``) looks at
    by default, as a module path.

    Found by one forward pass, so it follows the real data flow: the conv's output taken after
    the modules that directly follow it with the same shape (the ReLU of Keras'
    ``Conv2D(..., activation='relu')``, the whole last stage ``layer4`` of a ResNet). For
    'last', a conv with a 1×1 output is passed over when an earlier one is bigger: a 1×1 map
    says nothing about where.
    """
    calls = _trace(model, image)
    convs = [i for i, c in enumerate(calls) if c[2]]
    if not convs:
        raise ValueError("the model has no Conv2d layer; pass layer= explicitly")
    if which == "first":
        return _settled(calls, convs[0])
    wide = [i for i in convs if calls[i][1][-2] * calls[i][1][-1] > 1]
    return _settled(calls, (wide or convs)[-1])


# ---------------------------------------------------------------- Grad-CAM

@dataclass
class Explanation:
    """What one Grad-CAM pass found for a batch."""
    heatmaps: np.ndarray       # N×H×W float32 in [0, 1], at the input image size
    class_indices: np.ndarray  # N int64: the class each heatmap explains
    probabilities: np.ndarray  # N×K float32 softmax of the model's scores
    layer: str                 # the layer whose activations were weighted


def explain(model: nn.Module, images, class_index=None, layer=None) -> Explanation:
    """Grad-CAM (Selvaraju et al. 2017) for a batch.

    class_index: None (each image's predicted class), an int, or one int per image.
    layer: a module, a module path from ``model.named_modules()``, a Keras layer name, or
    None: the network's own ``feature_layer()`` when it declares one, else
    ``find_target_layer``. Frozen weights are fine: gradients are taken with respect to the
    layer's activations only, never the parameters.
    """
    x = _to_batch(images)
    if layer is None:
        layer = _declared_layer(model) or find_target_layer(model, x)
    layer_name, target = _resolve_layer(model, layer)
    saved: list[torch.Tensor] = []

    def hook(module, inp, out):
        if not isinstance(out, torch.Tensor) or out.ndim != 4:
            raise ValueError(f"layer {layer_name!r} must output N×C×H×W, got "
                             f"{getattr(out, 'shape', type(out).__name__)}")
        leaf = out.detach().requires_grad_(True)  # the graph starts here: works when frozen
        saved[:] = [leaf]
        return leaf.clone()  # a non-leaf, so in-place ops downstream (ReLU(inplace)) are fine

    with _hooked(model, [(target, hook)]), torch.enable_grad():
        logits, probs = class_scores(model, _model_input(model, x))
        if not saved:
            raise ValueError(f"layer {layer_name!r} was not used in the forward pass")
        n = logits.shape[0]
        if class_index is None:
            cls = logits.argmax(1)
        else:
            cls = torch.as_tensor(class_index, dtype=torch.long, device=logits.device)
            cls = cls.expand(n) if cls.ndim == 0 else cls
            if cls.shape != (n,) or bool((cls < 0).any() | (cls >= logits.shape[1]).any()):
                raise ValueError(f"class_index must be in [0, {logits.shape[1]}) "
                                 f"(one value or one per image)")
        act = saved[0]  # N×C×h×w
        score = logits.gather(1, cls[:, None]).sum()  # images are independent in eval mode
        (grad,) = torch.autograd.grad(score, act, allow_unused=True)
        if grad is None:
            raise ValueError(f"the output does not depend on layer {layer_name!r}")
    with torch.no_grad():
        weights = grad.mean(dim=(2, 3), keepdim=True)  # N×C×1×1: pooled gradients
        cam = F.relu((weights * act).sum(1, keepdim=True))  # N×1×h×w
        cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        peak = cam.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
        cam = (cam / peak).clamp(0, 1)
    return Explanation(cam.cpu().numpy().astype(np.float32), cls.cpu().numpy(),
                       probs.detach().float().cpu().numpy(), layer_name)


def grad_cam(model: nn.Module, image, class_index: int | None = None, layer=None) -> np.ndarray:
    """Grad-CAM heatmap H×W in [0, 1] for one image, for its predicted class by default."""
    return explain(model, _to_batch(image)[:1], class_index, layer).heatmaps[0]


def overlay(image, heatmap: np.ndarray, alpha: float = 0.45, colormap: str = "jet") -> np.ndarray:
    """Blend a heatmap (any size, values in [0, 1]) over an image -> uint8 H×W×3."""
    from matplotlib import colormaps

    base = _display_image(image)
    h, w = base.shape[:2]
    heat = torch.as_tensor(np.asarray(heatmap, dtype=np.float32))
    if heat.shape != (h, w):
        heat = F.interpolate(heat[None, None], size=(h, w), mode="bilinear",
                             align_corners=False)[0, 0]
    colours = colormaps[colormap](heat.clamp(0, 1).numpy())[:, :, :3]  # H×W×3 in [0, 1]
    mixed = (1 - alpha) * base.astype(np.float32) / 255 + alpha * colours
    return (mixed.clip(0, 1) * 255).round().astype(np.uint8)


def _enlarge(image: np.ndarray, min_side: int) -> np.ndarray:
    """Nearest-neighbour upscale of a uint8 H×W×3 picture so small images stay visible."""
    f = max(1, -(-min_side // min(image.shape[:2])))
    return image.repeat(f, 0).repeat(f, 1) if f > 1 else image


# ---------------------------------------------------------------- feature maps and filters

def feature_maps(model: nn.Module, image, layer=None) -> np.ndarray:
    """Activations of ``layer`` for one image -> C×h×w float32. Default: the first conv
    layer, after its activation (see ``find_target_layer``)."""
    if layer is None:
        layer = find_target_layer(model, image, "first")
    _, target = _resolve_layer(model, layer)
    saved = []
    with _hooked(model, [(target, lambda m, i, o: saved.append(o.detach()))]):
        with torch.no_grad():
            model(_model_input(model, _to_batch(image)[:1]))
    if not saved or saved[-1].ndim != 4:
        raise ValueError(f"layer {layer!r} did not produce an N×C×H×W output")
    return saved[-1][0].float().cpu().numpy()


def _grid_figure(tiles: list[np.ndarray], title: str | None, cmap: str | None, path):
    """Save square-ish grid of small pictures as one PNG."""
    from matplotlib.figure import Figure

    n = len(tiles)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(cols * 1.1, rows * 1.1 + (0.4 if title else 0)), dpi=100)
    for i, tile in enumerate(tiles):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(tile, cmap=cmap, interpolation="nearest")
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=11)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def plot_feature_maps(maps: np.ndarray, path, max_maps: int = 64, title: str | None = None):
    """A C×h×w array (from ``feature_maps``) -> grid PNG of the first ``max_maps`` channels."""
    return _grid_figure(list(maps[:max_maps]), title, "viridis", path)


def plot_filters(model: nn.Module, path, layer=None):
    """The kernels of ``layer`` (default: the first Conv2d) as pictures, one tile per filter.

    3-channel kernels are shown in colour, others as the mean over input channels in grey;
    each tile is scaled to its own min..max.
    """
    name, conv = _resolve_layer(model, layer if layer is not None else
                                (_conv_names(model) or [None])[0])
    if not isinstance(conv, nn.Conv2d):
        raise ValueError(f"layer {name!r} is not a Conv2d")
    w = conv.weight.detach().float().cpu()  # out×in×kh×kw
    tiles = []
    for k in w:
        k = k if k.shape[0] == 3 else k.mean(0, keepdim=True)
        k = (k - k.min()) / (k.max() - k.min()).clamp_min(1e-12)
        tiles.append(k.permute(1, 2, 0).numpy().squeeze(-1) if k.shape[0] == 1
                     else k.permute(1, 2, 0).numpy())
    return _grid_figure(tiles, f"{name}: {w.shape[0]} filters {w.shape[2]}×{w.shape[3]}",
                        "gray", path)


# ---------------------------------------------------------------- files

def _gradcam_figure(picture: np.ndarray, heatmap: np.ndarray, title: str, layer: str, path: Path):
    """The image beside its Grad-CAM overlay with a colour bar for the heat, ~800 px wide."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.4, 4.6), dpi=100, layout="constrained")
    left, right, bar = fig.subplots(1, 3, width_ratios=[1, 1, 0.06])
    for ax, shown, caption in ((left, picture, "image"),
                               (right, overlay(picture, heatmap), f"Grad-CAM at {layer}")):
        ax.imshow(shown, interpolation="nearest")
        ax.set_title(caption, fontsize=11)
        ax.set_axis_off()
    fig.colorbar(ScalarMappable(Normalize(0, 1), colormaps["jet"]), cax=bar,
                 label="share of the strongest evidence")
    fig.suptitle(title, fontsize=13)
    fig.savefig(path, format="png")


def save_explanations(model: nn.Module, images, out_dir, *, class_names=None, labels=None,
                      class_index=None, layer=None, names=None, sources=None,
                      min_side: int = 192, batch_size: int = 32) -> list[Path]:
    """Write one PNG per image: the image beside its Grad-CAM overlay and a colour bar, titled
    with the image's name, the predicted class and probability (and the true class when
    ``labels`` are given), the overlay captioned with the layer.

    images: an N×H×W×C array, N×C×H×W tensor or list of images. names: file stems
    (default 000, 001, ...). sources: the names shown in the titles (default: ``names``,
    e.g. the files the images came from). Returns the written paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    batch = _to_batch(images)
    class_names = class_names or getattr(model, "class_names", None)
    paths = []
    for start in range(0, len(batch), batch_size):
        part = batch[start:start + batch_size]
        ci = class_index
        if ci is not None and np.ndim(ci) == 1:
            ci = list(ci)[start:start + batch_size]
        if layer is None:  # found once (a module path), reused for later batches
            layer = _declared_layer(model) or find_target_layer(model, part[:1])
        ex = explain(model, part, ci, layer)
        for j, img in enumerate(part):
            i = start + j
            pic = _enlarge(_display_image(img), min_side)
            c = int(ex.class_indices[j])
            label = class_names[c] if class_names else str(c)
            stem = names[i] if names is not None else f"{i:03d}"
            source = sources[i] if sources is not None else stem
            text = f"{source}: predicted {label} ({ex.probabilities[j, c]:.0%})"
            if labels is not None:
                t = int(labels[i])
                text += f", true {class_names[t] if class_names else t}"
            paths.append(out / f"{stem}_gradcam.png")
            _gradcam_figure(pic, ex.heatmaps[j], text, ex.layer, paths[-1])
    return paths


def explain_files(model, image_paths, out_dir, *, class_index: int | None = None, layer=None,
                  feature_layer=None, filters: bool = True) -> list[Path]:
    """What ``cnnkit explain MODEL IMAGE...`` does: for each file a Grad-CAM PNG and a
    feature-map grid; plus the first layer's filters. ``model``: a model or a saved model path.
    Returns the written paths.
    """
    from cnnkit.data.decode import decode_image
    from cnnkit.serve.images import model_input_shape

    if not isinstance(model, nn.Module):
        from cnnkit import load_model
        model = load_model(model)
    h, w, c = model_input_shape(model)
    image_paths = [Path(p) for p in image_paths]
    arrays = np.stack([decode_image(p, "grayscale" if c == 1 else "rgb", (h, w))
                       for p in image_paths])  # N×H×W×C uint8
    stems = [p.stem for p in image_paths]
    out = Path(out_dir)
    written = save_explanations(model, arrays, out, class_index=class_index, layer=layer,
                                names=stems, sources=[p.name for p in image_paths])
    for path, stem, arr in zip(image_paths, stems, arrays):
        shown = feature_layer if feature_layer is not None else find_target_layer(model, arr, "first")
        name, _ = _resolve_layer(model, shown)
        maps = feature_maps(model, arr, shown)
        written.append(plot_feature_maps(maps, out / f"{stem}_features.png",
                                         title=f"{path.name}: feature maps of {name}"))
    if filters:
        written.append(plot_filters(model, out / "filters.png"))
    return written
