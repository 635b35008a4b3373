"""Captioned image grids drawn as ONE picture: the tiles are pasted into a single pixel
canvas (drawn pixel for pixel, no resampling) and the captions are figure texts over it
(``fig.texts``, in reading order).

A grid of one matplotlib Axes per tile (16 to 24 Axes, each with its ticks, spines and a
constrained-layout pass) took most of a small run's report time; a canvas with texts draws
in a fraction of that and looks the same: each image upscaled without smoothing, a thin
black frame, its caption above it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from PIL import Image

__all__ = ["Cell", "tile_figure", "save_exact", "DPI"]

DPI = 100          # pixels per inch of every report picture (plots._save's too)
LINE_SPACING = 1.2
PAD = 8            # px between the picture's edge, the title and the cells
# zlib level of every report PNG: level 1 encodes ~4x faster than PIL's default (6) for
# files ~10-20% larger (flat plot colours compress well at any level)
PNG_OPTIONS = {"pil_kwargs": {"compress_level": 1}}


@dataclass
class Cell:
    """One grid cell: its images side by side (H×W×C uint8 each), the caption above them."""

    panels: list
    caption: str
    color: str = "black"
    extra: dict = field(default_factory=dict)  # more Text keywords (e.g. ha)


def _line_px(points: float) -> float:
    return LINE_SPACING * points * DPI / 72


def _widest_px(renderer, texts: list[str], points: float, measure: int = 4) -> float:
    """The width in pixels of the widest line of ``texts`` at ``points``: only the
    ``measure`` longest lines are laid out (measuring every caption cost as much as drawing)."""
    lines = sorted({line for t in texts for line in t.split("\n")}, key=len, reverse=True)
    prop = FontProperties(size=points)
    return max([renderer.get_text_width_height_descent(line, prop, ismath=False)[0]
                for line in lines[:measure] if line] + [0.0])


def _panel(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` (H×W×1 or H×W×3 uint8) scaled to height×width×3 without smoothing, framed."""
    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]
    out = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize(
        (width, height), Image.Resampling.NEAREST))
    out = out.copy()
    out[[0, -1], :] = 0
    out[:, [0, -1]] = 0
    return out


class _Pixels(Artist):
    """An H×W×4 uint8 image covering the whole figure, drawn pixel for pixel (matplotlib's
    ``figimage`` resamples even at scale 1)."""

    def __init__(self, rgba: np.ndarray):
        super().__init__()
        self.rgba = np.ascontiguousarray(rgba[::-1])  # Agg counts rows from the bottom

    def draw(self, renderer):
        gc = renderer.new_gc()
        renderer.draw_image(gc, 0, 0, self.rgba)
        gc.restore()


def tile_figure(cells: list[Cell], *, cols: int, panel_in: float, title: str,
                caption_pt: float, title_pt: float, centered: bool = False,
                gap_px: int = 12) -> Figure:
    """A figure of ``cells`` in rows of ``cols``, each panel ``panel_in`` inches wide, each
    caption above its panels (left-aligned, or ``centered`` over them), ``title`` on top."""
    fig = Figure(dpi=DPI)
    renderer = FigureCanvasAgg(fig).get_renderer()
    n = max(len(cells), 1)
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    first = cells[0].panels[0] if cells else np.zeros((1, 1, 1), np.uint8)
    pw = int(round(panel_in * DPI))
    ph = int(round(pw * first.shape[0] / first.shape[1]))
    per = max((len(c.panels) for c in cells), default=1)
    inner = 6  # px between the panels of one cell
    caption_w = _widest_px(renderer, [c.caption for c in cells], caption_pt)
    cell_w = max(per * pw + (per - 1) * inner, int(np.ceil(caption_w)))
    cap_h = int(np.ceil(max((c.caption.count("\n") + 1 for c in cells), default=0)
                        * _line_px(caption_pt))) + 4
    title_w = _widest_px(renderer, [title], title_pt)
    width = max(cols * cell_w + (cols - 1) * gap_px + 2 * PAD, int(np.ceil(title_w)) + 2 * PAD)
    title_h = int(np.ceil((title.count("\n") + 1) * _line_px(title_pt))) + PAD
    height = PAD + title_h + rows * (cap_h + ph) + (rows - 1) * gap_px + PAD
    canvas = np.full((height, width, 4), 255, np.uint8)  # RGBA, white
    left0 = (width - (cols * cell_w + (cols - 1) * gap_px)) // 2
    places = []
    for i, cell in enumerate(cells):
        r, c = divmod(i, cols)
        x = left0 + c * (cell_w + gap_px)
        y = PAD + title_h + r * (cap_h + ph + gap_px)
        panels_w = len(cell.panels) * pw + (len(cell.panels) - 1) * inner
        x0 = x + (cell_w - panels_w) // 2 if centered else x
        for j, img in enumerate(cell.panels):
            px = x0 + j * (pw + inner)
            canvas[y + cap_h:y + cap_h + ph, px:px + pw, :3] = _panel(img, pw, ph)
        places.append((x + cell_w / 2 if centered else x, y + cap_h - 3))
    fig.set_size_inches(width / DPI, height / DPI)
    fig.add_artist(_Pixels(canvas))
    for cell, (x, y) in zip(cells, places):
        fig.text(x / width, 1 - y / height, cell.caption, fontsize=caption_pt, color=cell.color,
                 va="bottom", ha="center" if centered else "left",
                 multialignment="center" if centered else "left", linespacing=LINE_SPACING,
                 **cell.extra)
    fig.suptitle(title, fontsize=title_pt, y=1 - PAD / height, va="top",
                 linespacing=LINE_SPACING)
    return fig


def save_exact(fig: Figure, path) -> Path:
    """Write ``fig`` as a PNG of exactly its size (no tight-bbox pass: one draw)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, **PNG_OPTIONS)
    return path
