"""A chart's plotting area on a ``Drawing``: data to pixels, the frame, grid lines, ticks,
axis labels, the title and a legend, laid out as matplotlib lays out a plain Axes (its
default sizes: 12 pt title, 10 pt labels and ticks, 5% margins around the data)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .drawing import Drawing, line_px

__all__ = ["Chart", "Legend", "nice_ticks", "view", "legend_size", "COLORS"]

COLORS = ("#1f77b4", "#ff7f0e")  # matplotlib's first two colours (C0, C1)
GRID = "#e6e6e6"
PAD = 8          # px between the picture's edge and what it draws
TICK = 4         # px a tick mark sticks out
MARGIN = 0.05    # of the data's span, left free on each side (matplotlib's axes.xmargin)


def nice_ticks(lo: float, hi: float, most: int = 8) -> list[float]:
    """Round values 1, 2, 2.5 or 5 x 10^k apart from at or below ``lo`` to at or above
    ``hi``, at most ``most`` + 1 of them (matplotlib's MaxNLocator steps)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi - lo < 1e-12:
        lo, hi = lo - (abs(lo) or 1) * 0.05, hi + (abs(hi) or 1) * 0.05
    raw = (hi - lo) / most
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if (hi - lo) / (m * mag) <= most)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def view(lo: float, hi: float) -> tuple[float, float]:
    """[lo, hi] widened by ``MARGIN`` of its span each side (a point: +-0.055 of itself or 1)."""
    if hi - lo < 1e-12:
        pad = abs(lo) * 0.055 or 0.055
        return lo - pad, hi + pad
    return lo - MARGIN * (hi - lo), hi + MARGIN * (hi - lo)


def tick_text(value: float, values: list[float]) -> str:
    """``value`` with the fewest decimals that write every one of ``values`` exactly."""
    decimals = next((d for d in range(7) if all(abs(round(v, d) - v) < 1e-9 for v in values)), 6)
    text = f"{value:.{decimals}f}"
    return "0" if float(text) == 0 else text.replace("-", "\u2212")  # a real minus sign


@dataclass
class Legend:
    label: str
    color: str
    kind: str = "line"    # 'line' (a segment and marker) or 'patch' (a filled box)
    marker: str = ""


def legend_size(entries: list[Legend], points: float = 10, columns: int = 1) -> tuple[float, float]:
    """(width, height) px of a legend of ``entries`` in ``columns``, its text ``points`` tall."""
    col_w = max((28 + Drawing.text_size(e.label, points)[0] for e in entries), default=0)
    rows = -(-len(entries) // columns)
    return columns * col_w + (columns - 1) * 12 + 12, rows * line_px(points) + 8


@dataclass
class Chart:
    """Axes of ``width``×``height`` px: call ``layout`` with the data's ranges, then draw."""

    width: int
    height: int
    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    title_pt: float = 12
    label_pt: float = 10
    tick_pt: float = 10
    legend_pt: float = 10
    below: float = 0      # px left free under the x label (a legend drawn there)
    drawing: Drawing = field(init=False)

    def __post_init__(self):
        self.drawing = Drawing(self.width, self.height)

    # layout ----------------------------------------------------------------------------
    def layout(self, xlim: tuple, ylim: tuple, xticks: list[float],
               yticks: list[float] | None = None):
        """Fix the data ranges (``xlim``, ``ylim``: the view, margins included) and ticks, and
        place the plotting box inside the picture."""
        self.xlim, self.ylim = xlim, ylim
        self.xticks = [t for t in xticks if xlim[0] - 1e-9 <= t <= xlim[1] + 1e-9]
        yticks = yticks if yticks is not None else nice_ticks(*ylim)
        self.yticks = [t for t in yticks if ylim[0] - 1e-9 <= t <= ylim[1] + 1e-9]
        self.ytick_texts = [tick_text(t, self.yticks) for t in self.yticks]
        self.xtick_texts = [tick_text(t, self.xticks) for t in self.xticks]
        ytick_w = max((Drawing.text_size(t, self.tick_pt)[0] for t in self.ytick_texts), default=0)
        left = PAD + (line_px(self.label_pt) + 4 if self.ylabel else 0) + ytick_w + TICK + 3
        top = PAD + ((self.title.count("\n") + 1) * line_px(self.title_pt) + 6 if self.title else 0)
        bottom = (TICK + 3 + line_px(self.tick_pt)
                  + (line_px(self.label_pt) + 2 if self.xlabel else 0) + self.below + PAD)
        last_w = Drawing.text_size(self.xtick_texts[-1], self.tick_pt)[0] if self.xtick_texts else 0
        self.box = (left, top, self.width - PAD - last_w / 2, self.height - bottom)

    def px(self, x: float, y: float) -> tuple[float, float]:
        (x0, y0, x1, y1), (a, b), (c, d) = self.box, self.xlim, self.ylim
        return (x0 + (x - a) / (b - a) * (x1 - x0), y1 - (y - c) / (d - c) * (y1 - y0))

    # drawing ---------------------------------------------------------------------------
    def frame(self, grid: str = "both") -> None:
        """Grid lines (``grid``: 'both', 'y' or 'none'), the frame, ticks and their labels,
        the axis labels and the title."""
        d, (x0, y0, x1, y1) = self.drawing, self.box
        for t in self.yticks if grid in ("both", "y") else []:
            y = self.px(0, t)[1]
            d.line([(x0, y), (x1, y)], GRID, 1, role="grid")
        for t in self.xticks if grid == "both" else []:
            x = self.px(t, 0)[0]
            d.line([(x, y0), (x, y1)], GRID, 1, role="grid")
        self.draw_frame()
        for t, text in zip(self.yticks, self.ytick_texts):
            y = self.px(0, t)[1]
            d.line([(x0 - TICK, y), (x0, y)], "black", 1, role="tick")
            d.text(x0 - TICK - 3, y, text, self.tick_pt, ha="right", va="center", role="ytick")
        for t, text in zip(self.xticks, self.xtick_texts):
            x = self.px(t, 0)[0]
            d.line([(x, y1), (x, y1 + TICK)], "black", 1, role="tick")
            d.text(x, y1 + TICK + 3, text, self.tick_pt, ha="center", va="top", role="xtick")
        line = line_px(self.tick_pt)
        if self.xlabel:
            d.text((x0 + x1) / 2, y1 + TICK + 3 + line + 2, self.xlabel, self.label_pt,
                   ha="center", va="top", role="xlabel")
        if self.ylabel:
            d.text(PAD, (y0 + y1) / 2, self.ylabel, self.label_pt, ha="left", va="center",
                   rotation=90, role="ylabel")
        if self.title:
            d.text((x0 + x1) / 2, PAD, self.title, self.title_pt, ha="center", va="top",
                   role="title")

    def draw_frame(self) -> None:
        x0, y0, x1, y1 = self.box
        self.drawing.rect((x0, y0, x1 + 1, y1 + 1), outline="black", width=1, role="frame")

    def legend(self, entries: list[Legend], at: tuple[float, float], columns: int = 1,
               framed: bool = True) -> tuple:
        """Draw the legend with its top-left corner at ``at``; returns its box."""
        d = self.drawing
        w, h = legend_size(entries, self.legend_pt, columns)
        x, y = at
        box = (x, y, x + w, y + h)
        if framed:
            d.rect(box, fill="white", outline="#cccccc", width=1, role="legend")
        else:  # nothing drawn, the box only recorded
            d.rect(box, role="legend")
        line = line_px(self.legend_pt)
        col_w = (w - 12 - (columns - 1) * 12) / columns
        for i, e in enumerate(entries):
            r, c = divmod(i, columns)
            ex, ey = x + 6 + c * (col_w + 12), y + 4 + (r + 0.5) * line
            if e.kind == "patch":
                d.rect((ex, ey - 5, ex + 20, ey + 5), fill=e.color, role="legend-key")
            else:
                d.line([(ex, ey), (ex + 20, ey)], e.color, 1.5, role="legend-key")
                if e.marker:
                    d.marker(ex + 10, ey, e.marker, 6, e.color, role="legend-key")
            d.text(ex + 28, ey, e.label, self.legend_pt, ha="left", va="center",
                   role="legend-text")
        return box

    def best_legend_corner(self, entries: list[Legend], points: list[tuple[float, float]]):
        """The top-left corner of the legend in the plotting box's corner that covers the
        fewest of ``points`` (px), trying matplotlib's 'best' order."""
        w, h = legend_size(entries, self.legend_pt)
        x0, y0, x1, y1 = self.box
        corners = [(x1 - w - 6, y0 + 6), (x0 + 6, y0 + 6),  # upper right, upper left,
                   (x0 + 6, y1 - h - 6), (x1 - w - 6, y1 - h - 6)]  # lower left, lower right

        def covered(c):
            return sum(c[0] - 4 <= px <= c[0] + w + 4 and c[1] - 4 <= py <= c[1] + h + 4
                       for px, py in points)
        return min(corners, key=covered)
