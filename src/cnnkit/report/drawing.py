"""A report picture drawn with Pillow: text, lines, boxes, markers and pasted images on a
white canvas. Every item is recorded (its kind, text, size in points, colour, box and role),
so a test or a caller can read the picture back without looking at pixels.

Why Pillow and not matplotlib: a run's twelve pictures took ~1.3 s through matplotlib's Agg
canvas, most of it laying out and rasterising text artist by artist, against ~3 s of
training on 2,000 images; drawn here they take a few hundredths of that (measured by
``benchmarks/orchestration.py``). matplotlib stays for the user-facing plots (``plot_history``,
the LR finder, explain's figures), where its look and options matter more than its cost.

Lines and markers are drawn at ``scale``x and reduced with a box filter, which antialiases
them; pasted images go in after that, pixel for pixel.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["Drawing", "Drawn", "DPI", "LINE_SPACING", "PNG_COMPRESS_LEVEL", "font", "points_px",
           "line_px"]

DPI = 100                # pixels per inch: text of P points is P * DPI / 72 px tall
LINE_SPACING = 1.2       # a text line's height, in multiples of its size
PNG_COMPRESS_LEVEL = 1   # zlib level 1 encodes ~4x faster than PIL's default 6 for files
                         # ~10-20% larger (flat colours compress well at any level)


@lru_cache(maxsize=None)
def _font_file(bold: bool) -> str | None:
    """DejaVu Sans from matplotlib's data folder (found without importing matplotlib)."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = (Path(spec.submodule_search_locations[0]) / "mpl-data" / "fonts" / "ttf"
            / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"))
    return str(path) if path.is_file() else None


@lru_cache(maxsize=64)
def font(px: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """The report's sans-serif font at ``px`` pixels (Pillow's own when DejaVu is absent)."""
    file = _font_file(bold)
    return ImageFont.truetype(file, px) if file else ImageFont.load_default(px)


def points_px(points: float) -> float:
    """Pixels (at ``DPI``) of text ``points`` tall."""
    return points * DPI / 72


def line_px(points: float) -> float:
    """Pixels (at ``DPI``) of one line of text ``points`` tall, spacing included."""
    return LINE_SPACING * points_px(points)


@dataclass
class Drawn:
    """One recorded item: ``kind`` 'text', 'line', 'rect', 'marker' or 'image'; ``box`` is
    (left, top, right, bottom) in the saved picture's pixels."""

    kind: str
    box: tuple
    text: str = ""
    points: float = 0.0
    color: str = ""
    role: str = ""
    data: tuple = ()  # a line's data values, as the chart was given them


class Drawing:
    """A white ``width``×``height`` px picture; items are drawn in the order given."""

    def __init__(self, width: int, height: int, scale: int | None = None):
        self.width, self.height = int(math.ceil(width)), int(math.ceil(height))
        # supersample where it is cheap (a 1000x900 picture: 3.6 MP at 2x)
        self.scale = scale or (2 if self.width * self.height <= 2_000_000 else 1)
        s = self.scale
        self.image = Image.new("RGB", (self.width * s, self.height * s), "white")
        self._draw = ImageDraw.Draw(self.image)
        self.items: list[Drawn] = []
        self._pastes: list[tuple[np.ndarray, int, int]] = []

    @property
    def texts(self) -> list[Drawn]:
        return [i for i in self.items if i.kind == "text"]

    def role(self, role: str) -> list[Drawn]:
        return [i for i in self.items if i.role == role]

    # text ------------------------------------------------------------------------------
    @staticmethod
    def text_size(text: str, points: float, bold: bool = False) -> tuple[float, float]:
        """(width, height) in px of ``text`` (lines split on newlines), unrotated."""
        f = font(max(1, round(points_px(points) * 4)), bold)  # measured at 4x, for precision
        lines = text.split("\n")
        width = max(f.getlength(line) for line in lines) / 4
        return width, len(lines) * line_px(points)

    def text(self, x: float, y: float, text: str, points: float, color: str = "black",
             ha: str = "left", va: str = "top", rotation: float = 0, bold: bool = False,
             align: str | None = None, role: str = "") -> tuple:
        """Draw ``text`` with its box's ``ha`` ('left', 'center', 'right') and ``va`` ('top',
        'center', 'bottom') side at (x, y); rotated texts (degrees, anticlockwise) place their
        rotated box the same way. Lines are aligned ``align`` (default: as ``ha``). Returns
        the box."""
        s = self.scale
        w, h = self.text_size(text, points, bold)
        f = font(max(1, round(points_px(points) * s)), bold)
        step = line_px(points) * s  # one line, in canvas pixels
        align = align or ha
        anchor = {"left": "lm", "center": "mm", "right": "rm"}[align]
        if not rotation:  # straight onto the canvas
            left = x * s - {"left": 0, "center": w * s / 2, "right": w * s}[ha]
            top = y * s - {"top": 0, "center": h * s / 2, "bottom": h * s}[va]
            ax = left + {"left": 0, "center": w * s / 2, "right": w * s}[align]
            for i, line in enumerate(text.split("\n")):
                # each line's middle at the middle of its line box
                self._draw.text((ax, top + (i + 0.5) * step), line, fill=color, font=f,
                                anchor=anchor)
            box = (left / s, top / s, left / s + w, top / s + h)
        else:  # drawn into a mask, rotated, and placed by the rotated ink's box
            pad = int(step)  # room for descenders
            block = Image.new("L", (int(w * s) + 2 * pad, int(h * s) + 2 * pad), 0)
            pen = ImageDraw.Draw(block)
            ax = pad + {"left": 0, "center": w * s / 2, "right": w * s}[align]
            for i, line in enumerate(text.split("\n")):
                pen.text((ax, pad + (i + 0.5) * step), line, fill=255, font=f, anchor=anchor)
            block = block.rotate(rotation, resample=Image.Resampling.BICUBIC, expand=True)
            ink = block.getbbox() or (0, 0, 1, 1)
            bw, bh = ink[2] - ink[0], ink[3] - ink[1]
            left = x * s - {"left": 0, "center": bw / 2, "right": bw}[ha]
            top = y * s - {"top": 0, "center": bh / 2, "bottom": bh}[va]
            self.image.paste(color, (int(round(left - ink[0])), int(round(top - ink[1]))), block)
            box = (left / s, top / s, (left + bw) / s, (top + bh) / s)
        self.items.append(Drawn("text", box, text=text, points=points, color=color, role=role))
        return box

    # shapes ----------------------------------------------------------------------------
    def line(self, points: list[tuple[float, float]], color: str, width: float = 1.5,
             role: str = "", text: str = "", data: tuple = ()) -> None:
        """A polyline through ``points`` (px); ``text`` and ``data`` record what it shows."""
        s = self.scale
        xy = [(x * s, y * s) for x, y in points]
        if len(xy) > 1:
            self._draw.line(xy, fill=color, width=max(1, round(width * s)), joint="curve")
        xs, ys = [p[0] for p in points] or [0], [p[1] for p in points] or [0]
        self.items.append(Drawn("line", (min(xs), min(ys), max(xs), max(ys)), color=color,
                                role=role, text=text, data=data))

    def rect(self, box: tuple, fill: str | None = None, outline: str | None = None,
             width: float = 1, role: str = "", text: str = "") -> None:
        s = self.scale
        x0, y0, x1, y1 = box
        # the right and bottom edges are inclusive in Pillow, hence the -1; a box thinner
        # than a canvas pixel (a data wait of a few ms on a seconds axis) stays one pixel
        left, top = x0 * s, y0 * s
        self._draw.rectangle((left, top, max(left, x1 * s - 1), max(top, y1 * s - 1)),
                             fill=fill, outline=outline,
                             width=max(1, round(width * s)) if outline else 0)
        self.items.append(Drawn("rect", tuple(box), color=fill or outline or "", role=role,
                                text=text))

    def marker(self, x: float, y: float, shape: str, size: float, color: str,
               role: str = "") -> None:
        """A filled circle ('o') or square ('s') ``size`` px across, centred on (x, y)."""
        s, r = self.scale, size / 2
        box = (x - r, y - r, x + r, y + r)
        (self._draw.ellipse if shape == "o" else self._draw.rectangle)(
            [v * s for v in box], fill=color)
        self.items.append(Drawn("marker", box, color=color, role=role))

    def paste(self, rgb: np.ndarray, x: int, y: int, role: str = "") -> None:
        """An H×W×3 uint8 image, pixel for pixel, with its top-left corner at (x, y)."""
        self._pastes.append((np.ascontiguousarray(rgb), int(x), int(y)))
        self.items.append(Drawn("image", (x, y, x + rgb.shape[1], y + rgb.shape[0]), role=role))

    # output ----------------------------------------------------------------------------
    def picture(self) -> Image.Image:
        out = self.image.reduce(self.scale) if self.scale > 1 else self.image.copy()
        for rgb, x, y in self._pastes:
            out.paste(Image.fromarray(rgb), (x, y))
        return out

    def save(self, path) -> Path:
        """Write the picture as a PNG (zlib level ``PNG_COMPRESS_LEVEL``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.picture().save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        return path
