"""Test-time augmentation: one path for Model.evaluate, run.evaluate and the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit.run.evaluate import evaluate
from cnnkit.train.tta import resolve, tta_outputs


class MirrorSymmetric(torch.nn.Module):
    """Logits from the image averaged with its mirror: exactly flip-invariant."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3 * 8 * 8, 4)

    def forward(self, x):
        x = x.float() / 255 if not x.is_floating_point() else x
        return 0.5 * (self.fc(x.flatten(1)) + self.fc(x.flip(-1).flatten(1)))


class LeftHalf(torch.nn.Module):
    """Looks at the left columns only: its mirror sees other pixels."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3 * 8 * 4, 4)

    def forward(self, x):
        x = x.float() / 255 if not x.is_floating_point() else x
        return self.fc(x[..., :4].flatten(1))


def _data(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8), torch.arange(n) % 4


def _compiled(module):
    torch.manual_seed(0)
    model = cnnkit.Model(module) if not isinstance(module, cnnkit.Model) else module
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_tta_of_a_flip_invariant_model_equals_plain():
    model = _compiled(MirrorSymmetric())
    x, y = _data()
    plain = evaluate(model, x, y, per_sample=True)
    flipped = evaluate(model, x, y, tta="flip", per_sample=True)
    np.testing.assert_allclose(flipped["probabilities"], plain["probabilities"], atol=1e-6)
    assert flipped["accuracy"] == plain["accuracy"]
    assert flipped["loss"] == pytest.approx(plain["loss"], abs=1e-6)


def test_tta_averages_probabilities_not_logits():
    model = _compiled(LeftHalf())
    x, y = _data()
    xf = x.float() / 255
    with torch.no_grad():
        p = 0.5 * (model(xf).softmax(1) + model(xf.flip(-1)).softmax(1))
        out, is_logits = tta_outputs(model, xf, model.loss, "flip")
    assert is_logits
    torch.testing.assert_close(out.softmax(1), p)
    with torch.no_grad():
        logit_mean = 0.5 * (model(xf) + model(xf.flip(-1)))
    assert not torch.allclose(out.softmax(1), logit_mean.softmax(1), atol=1e-4)


def test_model_evaluate_tta_is_the_run_evaluation():
    model = _compiled(LeftHalf())
    x, y = _data()
    nhwc = x.permute(0, 2, 3, 1).numpy()
    for tta in ("flip", "flip_translate"):
        keras_style = model.evaluate(nhwc, y.numpy(), tta=tta, return_dict=True, verbose=0)
        run_style = evaluate(model, x, y, tta=tta)
        assert keras_style["accuracy"] == pytest.approx(run_style["accuracy"])
        assert keras_style["loss"] == pytest.approx(run_style["loss"], rel=1e-5)
    plain = model.evaluate(nhwc, y.numpy(), return_dict=True, verbose=0)
    with_flip = model.evaluate(nhwc, y.numpy(), tta=True, return_dict=True, verbose=0)
    assert plain["loss"] != pytest.approx(with_flip["loss"], rel=1e-6)


def test_tta_names_are_checked():
    assert resolve(True) == "flip" and resolve(False) == "none"
    with pytest.raises(ValueError, match="tta must be"):
        resolve("mirror")
