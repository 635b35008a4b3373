"""Each picture function on small known inputs: a PNG is written, with the right titles."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnkit.report import plots

NAMES = ["cat", "dog", "bird"]
HISTORY = [{"epoch": e, "loss": 1 / e, "accuracy": 0.5 + e / 10, "val_loss": 1.2 / e,
            "val_accuracy": 0.45 + e / 10, "data_wait_s": 0.1, "compute_s": 1.0 + e}
           for e in (1, 2, 3)]


def _png(path):
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width > 200 and img.height > 150
        return img.size


def _captions(drawing):
    """A grid's tile captions, in reading order (its title aside)."""
    return drawing.role("caption")


def _title(drawing) -> str:
    return drawing.role("title")[0].text


def test_curves_show_training_and_validation(tmp_path, drawings):
    _png(plots.curves(HISTORY, "accuracy", tmp_path / "acc.png"))
    series = drawings[-1].role("series")
    assert [s.text for s in series] == ["training accuracy", "validation accuracy"]
    assert list(series[1].data) == [r["val_accuracy"] for r in HISTORY]
    assert [t.text for t in drawings[-1].role("legend-text")] == ["training accuracy",
                                                                  "validation accuracy"]
    assert [t.text for t in drawings[-1].role("xtick")] == ["1", "2", "3"]


def test_curves_without_validation(tmp_path, drawings):
    rows = [{k: v for k, v in r.items() if not k.startswith("val_")} for r in HISTORY]
    _png(plots.curves(rows, "loss", tmp_path / "loss.png"))
    assert [s.text for s in drawings[-1].role("series")] == ["training loss"]


def test_confusion_matrix_counts_in_cells(tmp_path, drawings):
    cm = np.array([[5, 1, 0], [2, 7, 0], [0, 0, 9]])
    _png(plots.confusion(cm, NAMES, tmp_path / "cm.png"))
    d = drawings[-1]
    assert sorted(t.text for t in d.role("count")) == sorted(["5", "1", "2", "7", "9"])
    assert [t.text for t in d.role("xtick")] == NAMES == [t.text for t in d.role("ytick")]
    assert d.role("xlabel")[0].text == "Predicted" and d.role("ylabel")[0].text == "Actual"
    # the cells' colour is the share of the row: the diagonal of the last row is darkest
    cells = d.role("cell")
    assert cells[8].color == max((c.color for c in cells), key=lambda h: -int(h[1:3], 16))


def test_confusion_matrix_many_classes(tmp_path):
    k = 100
    cm = np.random.default_rng(0).integers(0, 5, (k, k))
    _png(plots.confusion(cm, [f"c{i}" for i in range(k)], tmp_path / "cm100.png"))


def test_prediction_grid_titles_like_the_tutorial(tmp_path, drawings):
    images = np.random.default_rng(0).integers(0, 255, (3, 3, 16, 16), dtype=np.uint8)  # N×C×H×W
    probs = np.array([[0.9, 0.1, 0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
    _png(plots.prediction_grid(images, [0, 0, 2], [0, 1, 0], probs, NAMES, tmp_path / "s.png"))
    captions = _captions(drawings[-1])
    titles = [t.text for t in captions]
    assert len(titles) == 3
    assert titles[0].startswith("Actual: cat | Predicted: cat")
    assert titles[1].startswith("Actual: cat | Predicted: dog")
    assert titles[2].startswith("Actual: bird | Predicted: cat")
    colors = [t.color for t in captions]
    assert colors[0] == plots.RIGHT and colors[1] == plots.WRONG


def test_top_losses_with_and_without_overlays(tmp_path, drawings):
    images = np.random.default_rng(1).integers(0, 255, (2, 12, 12, 1), dtype=np.uint8)  # N×H×W×C
    probs = np.array([[0.1, 0.8, 0.1], [0.05, 0.05, 0.9]])
    plain = _png(plots.top_losses(images, [0, 1], [1, 2], [2.3, 3.0], probs, NAMES,
                                  tmp_path / "t.png"))
    assert len(_captions(drawings[-1])) == 2 and "Grad-CAM" not in _title(drawings[-1])
    overlays = np.zeros((2, 12, 12, 3), np.uint8)
    paired = _png(plots.top_losses(images, [0, 1], [1, 2], [2.3, 3.0], probs, NAMES,
                                   tmp_path / "t2.png", overlays=overlays))
    fig = drawings[-1]
    assert len(_captions(fig)) == 2 and "Grad-CAM" in _title(fig)
    assert _captions(fig)[0].text.startswith("Actual: cat | Predicted: dog\nloss 2.30")
    assert paired[0] > plain[0]  # each mistake beside its heatmap: wider rows


def test_grid_tiles_are_the_images_scaled_without_smoothing(tmp_path):
    """A tile is the image upscaled pixel for pixel (no interpolation blur), in a black frame."""
    image = np.zeros((1, 4, 4, 3), np.uint8)
    image[0, :2, :2] = (255, 0, 0)  # top-left quarter red
    path = plots.prediction_grid(image, [0], [0], np.array([[1.0, 0, 0]]), NAMES,
                                 tmp_path / "one.png")
    with Image.open(path) as img:
        px = np.asarray(img.convert("RGB"))
    red = np.all(px == (255, 0, 0), axis=-1)
    rows, cols = np.nonzero(red)
    side = rows.max() - rows.min() + 1
    assert side == cols.max() - cols.min() + 1 == red.sum() ** 0.5  # one solid square
    assert side >= 150  # 3.2 in at 100 dpi, half of it, less the frame
    left, top = cols.min(), rows.min()
    assert np.all(px[top - 1, left:left + side] == 0)  # the frame's top edge


def test_timing_stacks_wait_on_compute(tmp_path, drawings):
    _png(plots.timing(HISTORY, tmp_path / "time.png"))
    d = drawings[-1]
    assert [t.text for t in d.role("legend-text")] == ["compute (9.0s)", "data wait (0.3s)"]
    bars = d.role("bar")
    assert [b.text for b in bars] == ["compute", "data wait"] * 3
    compute, wait = bars[4].box, bars[5].box  # epoch 3: 4 s computing, 0.1 s waiting
    assert wait[3] == pytest.approx(compute[1], abs=1) and wait[1] < compute[1]  # on top
    assert (compute[3] - compute[1]) / (wait[3] - wait[1]) == pytest.approx(40, rel=0.2)


def test_to_display_layouts():
    nchw = np.zeros((2, 3, 5, 7), np.uint8)
    assert plots.to_display(nchw).shape == (2, 5, 7, 3)
    floats = np.ones((1, 4, 4, 1), np.float32)
    assert plots.to_display(floats).dtype == np.uint8 and plots.to_display(floats).max() == 255


def _zlib_level_flag(png_path) -> int:
    """FLEVEL of the first IDAT chunk's zlib header (0 = fastest ... 3 = maximum)."""
    data = open(png_path, "rb").read()
    at = data.index(b"IDAT") + 4
    return data[at + 1] >> 6


def test_report_pngs_are_written_with_the_fast_zlib_level(tmp_path):
    # PIL's default level 6 (FLEVEL 2) took ~0.3 s of a small run's ~1.4 s report here;
    # level 1 (FLEVEL 0) encodes ~4x faster for ~15% larger files
    assert _zlib_level_flag(plots.curves(HISTORY, "loss", tmp_path / "loss.png")) == 0
    grid = plots.prediction_grid(np.zeros((2, 8, 8, 3), np.uint8), [0, 1], [0, 0], None,
                                 ["a", "b"], tmp_path / "grid.png")
    assert _zlib_level_flag(grid) == 0


def test_timing_draws_a_data_wait_thinner_than_a_pixel(tmp_path, drawings):
    """A wait of milliseconds on an axis of seconds is a box under a pixel tall: it is drawn
    (one pixel), not an error that loses the report (Pillow refuses y1 < y0)."""
    rows = [{"epoch": e, "data_wait_s": 0.0004, "compute_s": 3.0} for e in (1, 2)]
    _png(plots.timing(rows, tmp_path / "t.png"))
    waits = [b for b in drawings[-1].role("bar") if b.text == "data wait"]
    assert len(waits) == 2 and all(0 < b.box[3] - b.box[1] < 0.5 for b in waits)
