"""Captioned image grids drawn as ONE picture: each tile is pasted pixel for pixel into the
canvas (upscaled without smoothing, in a thin black frame) under its caption, the title on
top (``report.drawing``; the captions are its texts with role 'caption', in reading order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .drawing import DPI, Drawing, line_px

__all__ = ["Cell", "tile_figure", "DPI"]

PAD = 8            # px between the picture's edge, the title and the cells


@dataclass
class Cell:
    """One grid cell: its images side by side (H×W×C uint8 each), the caption above them."""

    panels: list
    caption: str
    color: str = "black"



def _widest_px(texts: list[str], points: float) -> float:
    """The width in pixels of the widest line of ``texts`` at ``points``."""
    lines = {line for t in texts for line in t.split("\n") if line}
    return max([Drawing.text_size(line, points)[0] for line in lines] + [0.0])


def _panel(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` (H×W×1 or H×W×3 uint8) scaled to height×width×3 without smoothing, framed."""
    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]
    out = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize(
        (width, height), Image.Resampling.NEAREST)).copy()
    out[[0, -1], :] = 0
    out[:, [0, -1]] = 0
    return out


def tile_figure(cells: list[Cell], *, cols: int, panel_in: float, title: str,
                caption_pt: float, title_pt: float, centered: bool = False,
                gap_px: int = 12) -> Drawing:
    """A picture of ``cells`` in rows of ``cols``, each panel ``panel_in`` inches wide, each
    caption above its panels (left-aligned, or ``centered`` over them), ``title`` on top."""
    n = max(len(cells), 1)
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    first = cells[0].panels[0] if cells else np.zeros((1, 1, 1), np.uint8)
    pw = int(round(panel_in * DPI))
    ph = int(round(pw * first.shape[0] / first.shape[1]))
    per = max((len(c.panels) for c in cells), default=1)
    inner = 6  # px between the panels of one cell
    caption_w = _widest_px([c.caption for c in cells], caption_pt)
    cell_w = max(per * pw + (per - 1) * inner, int(math.ceil(caption_w)))
    cap_h = int(math.ceil(max((c.caption.count("\n") + 1 for c in cells), default=0)
                          * line_px(caption_pt))) + 4
    title_w = _widest_px([title], title_pt)
    width = max(cols * cell_w + (cols - 1) * gap_px + 2 * PAD, int(math.ceil(title_w)) + 2 * PAD)
    title_h = int(math.ceil((title.count("\n") + 1) * line_px(title_pt))) + PAD
    height = PAD + title_h + rows * (cap_h + ph) + (rows - 1) * gap_px + PAD
    drawing = Drawing(width, height, scale=1)  # text is antialiased by FreeType already
    drawing.text(width / 2, PAD, title, title_pt, ha="center", va="top", role="title")
    left0 = (width - (cols * cell_w + (cols - 1) * gap_px)) // 2
    for i, cell in enumerate(cells):
        r, c = divmod(i, cols)
        x = left0 + c * (cell_w + gap_px)
        y = PAD + title_h + r * (cap_h + ph + gap_px)
        panels_w = len(cell.panels) * pw + (len(cell.panels) - 1) * inner
        x0 = x + (cell_w - panels_w) // 2 if centered else x
        for j, img in enumerate(cell.panels):
            drawing.paste(_panel(img, pw, ph), x0 + j * (pw + inner), y + cap_h, role="tile")
        drawing.text(x + cell_w / 2 if centered else x, y + cap_h - 3, cell.caption, caption_pt,
                     color=cell.color, ha="center" if centered else "left", va="bottom",
                     role="caption")
    return drawing
