"""``cnnkit compare RUN RUN ...``: one self-contained HTML page comparing runs.

The page holds a summary table (data, model, epochs, best, final and test accuracy, time),
the per-epoch curves of every run overlaid (loss, accuracy, val_loss, val_accuracy: one
colour per run, a legend), drawn with matplotlib and inlined as base64 PNG, and the table
of the TrainConfig settings that differ between the runs. Nothing is fetched: the file opens
offline, as report.html does.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..run.listing import RunSummary, summarize
from .html import _CSS, _e, _fmt, _table

__all__ = ["CURVES", "config_differences", "render_compare", "write_compare"]

CURVES = ("loss", "accuracy", "val_loss", "val_accuracy")
_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
            "#17becf", "#7f7f7f", "#bcbd22"]


def colour(i: int) -> str:
    return _COLOURS[i % len(_COLOURS)]


def config_differences(summaries: list[RunSummary]) -> list[tuple[str, list]]:
    """(setting, [value per run]) for every TrainConfig setting that is not the same in all."""
    from ..config import TrainConfig
    defaults = TrainConfig().to_dict()
    names = list(defaults) + sorted({k for s in summaries for k in s.config} - set(defaults))
    rows = []
    for name in names:
        values = [s.config.get(name, defaults.get(name)) for s in summaries]
        if any(v != values[0] for v in values[1:]):
            rows.append((name, values))
    return rows


def _curve_png(summaries: list[RunSummary], key: str) -> str | None:
    """``key`` per epoch for every run that logged it, as a PNG data URI (None: none did)."""
    fig = Figure(figsize=(6.4, 3.6), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    drawn = False
    for i, s in enumerate(summaries):
        points = [(r["epoch"], r[key]) for r in s.history if isinstance(r.get(key), (int, float))]
        if points:
            epochs, values = zip(*points)
            ax.plot(epochs, values, marker="o", markersize=3, color=colour(i), label=s.name)
            drawn = True
    if not drawn:
        return None
    ax.set_title(key)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _value(v) -> str:
    return v if isinstance(v, str) and v else json.dumps(v)  # '' shows as ""


def render_compare(summaries: list[RunSummary]) -> str:
    """The comparison page of ``summaries`` (in their order) as an HTML string."""
    names = [s.name for s in summaries]
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>"
             "<meta name='viewport' content='width=device-width, initial-scale=1'>"
             f"<title>cnnkit compare: {_e(' vs '.join(names))}</title><style>{_CSS}"
             ".swatch{display:inline-block;width:12px;height:12px;border-radius:2px;"
             "margin-right:6px;vertical-align:-1px} table.runs td:first-child{white-space:nowrap}"
             "</style></head><body><main>",
             f"<h1>Comparing {len(summaries)} runs</h1>"]
    rows = []
    for i, s in enumerate(summaries):
        best = f"{s.best['monitor']} {s.best['value']:.4f} (epoch {s.best['epoch']})" \
            if s.best else ""
        rows.append([f"<span class='swatch' style='background:{colour(i)}'></span>{_e(s.name)}",
                     _e(s.data), _e(s.model), f"{s.epochs}/{s.planned}", _e(best),
                     _fmt(s.final.get("val_accuracy")), _fmt(s.test_accuracy),
                     "" if s.seconds is None else f"{s.seconds:.1f}s", _e(s.status),
                     _e(s.path)])
    head = ["run", "data", "model", "epochs", "best", "final val_accuracy", "test accuracy",
            "time", "status", "folder"]
    parts.append("<h2 id='runs'>Runs</h2><div class='scroll'><table class='runs'><thead><tr>"
                 + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead><tbody>"
                 + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
                 + "</tbody></table></div>")
    figures = []
    for key in CURVES:
        uri = _curve_png(summaries, key)
        if uri:
            figures.append(f"<figure><img alt='{_e(key)} per epoch, one line per run' "
                           f"data-curve='{_e(key)}' src='{uri}'></figure>")
    parts.append("<h2 id='curves'>Curves per epoch</h2>"
                 + (f"<div class='row'>{''.join(figures)}</div>" if figures else
                    "<p class='note'>No run has a history.csv with epochs yet.</p>"))
    diffs = config_differences(summaries)
    parts.append("<h2 id='config'>Settings that differ</h2>")
    if diffs:
        parts.append(_table(["setting", *names], [[k, *map(_value, v)] for k, v in diffs],
                            "config-diff"))
    else:
        parts.append("<p>The runs have the same settings.</p>")
    parts.append("</main></body></html>\n")
    return "".join(parts)


def write_compare(runs, output) -> Path:
    """Write the comparison page of the run directories ``runs`` to ``output``."""
    from ..run.directory import _atomic_write_text
    summaries = [summarize(r) for r in runs]
    output = Path(output)
    _atomic_write_text(output, render_compare(summaries))
    return output
