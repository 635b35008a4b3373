"""Test-time augmentation for any model: the one TTA path (``Model.evaluate(tta=...)``,
``run.evaluate.evaluate``, recipes, ``cnnkit evaluate --tta``, ``cnnkit train --tta``).

Views (weights as airbench's ``infer_tta`` gives them):

- ``'flip'``: the image and its mirror, 1/2 each;
- ``'flip_translate'``: those two at 1/4 each, plus the image moved one pixel up-left and
  one pixel down-right (reflect padding), each with its mirror, at 1/8 each.

The model's class probabilities (softmax, or sigmoid for one output / a sigmoid loss) are
averaged over the views; what comes back is the log of that average as logits (the softmax
of log-probabilities is those probabilities; for sigmoid outputs, the logit of the average)
so a loss and the metrics take it as they take any logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["TTA_MODES", "VIEWS", "resolve", "tta_outputs"]

TTA_MODES = ("none", "flip", "flip_translate")
VIEWS = {"none": ["identity"], "flip": ["identity", "hflip"],
         "flip_translate": ["identity", "hflip", "shift(-1,-1)", "shift(-1,-1)+hflip",
                            "shift(+1,+1)", "shift(+1,+1)+hflip"]}


def resolve(tta) -> str:
    """``True`` -> 'flip', ``False`` / ``None`` -> 'none', a mode name -> itself."""
    if tta is True:
        return "flip"
    if tta in (False, None):
        return "none"
    if tta not in TTA_MODES:
        raise ValueError(f"tta must be True/False or one of {', '.join(TTA_MODES)}, got {tta!r}")
    return tta


def _views(x: torch.Tensor, tta: str):
    """(view, weight) pairs of float N×C×H×W ``x``."""
    if tta == "flip":
        return [(x, 0.5), (x.flip(-1), 0.5)]
    h, w = x.shape[-2:]
    pad = F.pad(x, (1,) * 4, mode="reflect")
    up_left, down_right = pad[..., 2:h + 2, 2:w + 2], pad[..., 0:h, 0:w]
    return [(x, 0.25), (x.flip(-1), 0.25)] + [
        (v, 0.125) for s in (up_left, down_right) for v in (s, s.flip(-1))]


def _probabilities(out: torch.Tensor, is_logits: bool, sigmoid: bool) -> torch.Tensor:
    if not is_logits:
        return out
    return torch.sigmoid(out) if sigmoid else torch.softmax(out, dim=1)


def tta_outputs(model, x: torch.Tensor, loss, tta: str = "flip"):
    """(outputs, outputs_are_logits) of ``model`` on float batch ``x`` with the views of
    ``tta`` averaged as probabilities ('none': the model's own outputs)."""
    from .engine import _memory_format, model_outputs
    out, is_logits = model_outputs(model, _memory_format(model, x), loss)
    if tta == "none":
        return out.float(), is_logits
    sigmoid = (out.shape[1] == 1 or getattr(loss, "fused_activation", None) == "sigmoid"
               or getattr(model, "output_activation", None) == "sigmoid")
    mean = None
    for i, (view, weight) in enumerate(_views(x, tta)):
        o = out if i == 0 else model_outputs(model, _memory_format(model, view), loss)[0]
        p = _probabilities(o.float(), is_logits, sigmoid) * weight
        mean = p if mean is None else mean + p
    if not is_logits:
        return mean, False
    mean = mean.clamp(1e-12, 1.0)
    return (torch.logit(mean.clamp(max=1 - 1e-7)) if sigmoid else mean.log()), True
