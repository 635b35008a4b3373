"""The report's pictures are legible where the page shows them, at 1280 px and at 390 px, and
the page fits those windows (the command wraps, tables scroll in their box)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnkit.report import plots
from cnnkit.report.html import NARROW_MEDIA, render_report

CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
HISTORY = [{"epoch": e, "loss": 2 / e, "accuracy": 0.3 + e / 10, "val_loss": 2.2 / e,
            "val_accuracy": 0.25 + e / 10, "data_wait_s": 0.2, "compute_s": 30.0}
           for e in range(1, 6)]
DPI = 100  # report.drawing.DPI


def _draw(name: str, path, narrow: bool):
    rng = np.random.default_rng(0)
    k = len(CIFAR)
    images = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    actual, predicted = np.arange(16) % k, (np.arange(16) + 1) % k
    probs = rng.dirichlet(np.ones(k), 16)
    if name == "accuracy":
        return plots.curves(HISTORY, "accuracy", path, narrow=narrow)
    if name == "confusion":
        return plots.confusion(rng.integers(0, 100, (k, k)), CIFAR, path, narrow=narrow)
    if name == "samples":
        return plots.prediction_grid(images, actual, predicted, probs, CIFAR, path, narrow=narrow)
    if name == "top_losses":
        return plots.top_losses(images[:12], actual[:12], predicted[:12], rng.random(12) * 5,
                                probs[:12], CIFAR, path, overlays=images[:12], narrow=narrow)
    return plots.timing(HISTORY, path, narrow=narrow)


# where report.html shows each picture in a 1280 px window
WIDE_SLOT = {"accuracy": "half", "confusion": "square", "samples": "wide", "top_losses": "wide",
             "timing": "wide"}


@pytest.mark.parametrize("narrow", [False, True], ids=["1280px", "390px"])
@pytest.mark.parametrize("name", list(WIDE_SLOT))
def test_smallest_text_is_legible_where_the_page_shows_it(tmp_path, drawings, name, narrow):
    path = _draw(name, tmp_path / f"{name}.png", narrow)
    with Image.open(path) as img:
        png_width = img.width
    shown = min(png_width, plots.SHOWN_PX["narrow" if narrow else WIDE_SLOT[name]])
    texts = [t for t in drawings[-1].texts if t.text.strip()]
    assert texts
    smallest = min(texts, key=lambda t: t.points)
    px = smallest.points * DPI / 72 * shown / png_width  # CSS px tall on the page
    assert px >= plots.LEGIBLE_PX, (f"{name}: {smallest.text!r} is {px:.1f} px tall "
                                    f"(picture {png_width} px shown at {shown} px)")


@pytest.mark.parametrize("narrow", [False, True])
def test_timing_legend_covers_no_bar(tmp_path, drawings, narrow):
    plots.timing(HISTORY, tmp_path / "t.png", narrow=narrow)
    d = drawings[-1]
    (lx0, ly0, lx1, ly1), = [r.box for r in d.role("legend")]
    bars = [r.box for r in d.role("bar")]
    assert bars and not [b for b in bars if b[0] < lx1 and lx0 < b[2] and b[1] < ly1 and ly0 < b[3]]


def test_page_wraps_the_command_and_scrolls_tables(report_run):
    page = render_report(report_run)
    assert "pre.wrap{white-space:pre-wrap;overflow-wrap:anywhere}" in page
    assert "<h2 id='command'>Command</h2><pre class='wrap'>cnnkit train" in page \
        or "<h2 id='command'>Command</h2><pre class='wrap'>#" in page
    assert page.count('<div class="scroll"><table') == page.count("<table")


def test_each_picture_once_with_its_phone_version_and_no_repeated_caption(report_run):
    page = render_report(report_run)
    assert "<figcaption" not in page  # each picture carries its own title
    assert page.count("<picture>") == 6
    assert page.count(f'<source media="{NARROW_MEDIA}" srcset="data:image/png;base64,') == 6
    for name in ("accuracy", "loss", "confusion_matrix", "samples", "top_losses", "timing"):
        assert (report_run / "plots" / f"{name}.narrow.png").is_file()


def test_top_losses_name_the_grad_cam_layer_as_the_user_knows_it(tmp_path, drawings):
    import cnnkit
    from cnnkit import layers
    from cnnkit.report import gradcam_overlays

    model = cnnkit.Sequential([layers.Input((12, 12, 1)), layers.Conv2D(4, 3, activation="relu"),
                               layers.Conv2D(4, 3, activation="relu"), layers.Flatten(),
                               layers.Dense(3)])
    images = np.random.default_rng(1).integers(0, 256, (2, 12, 12, 1), dtype=np.uint8)
    overlays, layer = gradcam_overlays(model, images)
    assert overlays.shape == (2, 12, 12, 3) and layer == "conv2d_1"
    probs = np.full((2, 3), 1 / 3)
    plots.top_losses(images, [0, 1], [1, 2], [2.3, 3.0], probs, ["a", "b", "c"], tmp_path / "t.png",
                     overlays=overlays, layer=layer)
    assert drawings[-1].role("title")[0].text.endswith("(right: Grad-CAM at conv2d_1 for the predicted class)")
