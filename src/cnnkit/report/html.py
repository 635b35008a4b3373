"""``report.html``: one self-contained page per run, built from the files in the run directory.

Images are embedded as base64 PNG, styles are inline, nothing is fetched: the file opens
offline in any browser and can be mailed or attached as it is. ``cnnkit report RUN``
rebuilds it from the run directory.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from .plots import narrow_path

__all__ = ["write_report", "render_report", "PLOTS"]

NARROW_MEDIA = "(max-width: 700px)"  # windows that get the x.narrow.png pictures

# (file in plots/, section title, alt text)
PLOTS = {
    "accuracy": ("accuracy.png", "Training and validation accuracy"),
    "loss": ("loss.png", "Training and validation loss"),
    "confusion": ("confusion_matrix.png", "Confusion matrix"),
    "samples": ("samples.png", "Sample predictions"),
    "top_losses": ("top_losses.png", "Top losses"),
    "timing": ("timing.png", "Data wait vs compute time per epoch"),
}

_CSS = """
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;
 margin:0;background:#f6f8fa;color:#1f2328}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{margin:0 0 4px 0;font-size:26px} h2{margin:28px 0 10px;font-size:20px;
 border-bottom:1px solid #d0d7de;padding-bottom:4px}
.sub{color:#59636e;margin-bottom:16px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:10px 16px;min-width:140px}
.card .v{font-size:22px;font-weight:600} .card .k{color:#59636e;font-size:12px}
.row{display:flex;flex-wrap:wrap;gap:16px}
figure{background:#fff;border:1px solid #d0d7de;border-radius:8px;margin:0;padding:8px}
figure img{max-width:100%;display:block;margin:0 auto}
.row figure{flex:1 1 420px;min-width:0}
figure.square img{max-width:min(900px,100%)}
.scroll{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;background:#fff;font-size:13px}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
th{background:#f0f3f6}
pre{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:10px;overflow-x:auto;
 font-size:12px;line-height:1.25}
pre.wrap{white-space:pre-wrap;overflow-wrap:anywhere}
@media (max-width:700px){main{padding:12px}}
.note{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:6px 10px;margin:6px 0}
.note.warning{background:#ffebe9;border-color:#cf222e}
"""


def _e(value) -> str:
    return html.escape(str(value))


def _png_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _img(path: Path, alt: str, cls: str = "") -> str:
    """The picture, with its phone-width version (``x.narrow.png``) for windows under
    ``NARROW_MEDIA``. No caption: each picture carries its title."""
    if not path.is_file():
        return f'<p class="note">{_e(alt)}: not drawn ({_e(path.name)} is missing)</p>'
    narrow = narrow_path(path)
    source = (f'<source media="{NARROW_MEDIA}" srcset="{_png_uri(narrow)}">'
              if narrow.is_file() else "")
    return (f'<figure class="{cls}"><picture>{source}<img alt="{_e(alt)}" '
            f'data-plot="{_e(path.stem)}" src="{_png_uri(path)}"></picture></figure>')


def _table(header: list[str], rows: list[list], cls: str = "") -> str:
    """A table that scrolls sideways inside its box instead of widening the page."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return (f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{body}</tbody></table></div>')


def _fmt(v, digits: int = 4) -> str:
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return "" if v is None else str(v)


def render_report(run_dir) -> str:
    """The report page for ``run_dir`` as an HTML string."""
    from ..runs import RunDir
    run = RunDir(run_dir)
    cfg = run.read_json_or_empty(run.config_json)
    env = run.read_json_or_empty(run.env)
    metrics = run.read_json_or_empty(run.metrics)
    history = run.read_history()
    summary = run.summary.read_text() if run.summary.is_file() else ""
    command = run.command.read_text() if run.command.is_file() else ""
    name = run.path.name

    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
             f"<title>cnnkit run {_e(name)}</title><style>{_CSS}</style></head><body><main>"]
    parts.append(f"<h1>Run {_e(name)}</h1>")
    parts.append(f"<div class='sub'>{_e(metrics.get('data') or env.get('data', ''))} · model "
                 f"{_e(env.get('model', cfg.get('model', '')))} · {_e(env.get('device', ''))} · "
                 f"{_e(env.get('time', ''))}</div>")

    # key numbers
    cards = []
    multi = bool(metrics.get("multi_label"))
    if multi:
        from . import multilabel
        cards += multilabel.cards(metrics)
    elif metrics:
        split = "test" if metrics.get("split", "test") == "test" else "held-out"
        cards += [(f"{split} accuracy", _fmt(metrics.get("test_accuracy"))),
                  (f"{split} loss", _fmt(metrics.get("test_loss"))),
                  ("macro F1", _fmt(metrics.get("macro_f1")))]
    if metrics:
        cards += [("epochs", f"{metrics.get('epochs_run')}/{metrics.get('epochs_planned')}"),
                  ("s / epoch", _fmt(metrics.get("seconds_per_epoch"), 2))]
        train_s = metrics.get("train_seconds") or 0
        wait = metrics.get("data_wait_s") or 0
        if train_s:
            cards.append(("data wait", f"{100 * wait / train_s:.1f}%"))
    if cards:
        parts.append("<div class='cards'>" + "".join(
            f"<div class='card'><div class='v'>{_e(v)}</div><div class='k'>{_e(k)}</div></div>"
            for k, v in cards) + "</div>")
    if metrics.get("evaluated_on"):
        parts.append(f"<p>Evaluated on the {_e(metrics['evaluated_on'])} with the "
                     f"{_e(metrics.get('weights', 'last'))} weights." + (f" Best {_e(metrics['best'].get('monitor'))}: "
                                   f"{_fmt(metrics['best'].get('value'))} at epoch {_e(metrics['best'].get('epoch'))} "
                                   "(saved in best/)." if metrics.get("best") else "") + "</p>")
    if metrics.get("tta"):
        parts.append(f"<p id='tta'>Test-time augmentation: probabilities averaged over "
                     f"{_e(', '.join(metrics.get('tta_views') or []))}.</p>")
    mixed = any(k in str(cfg.get("augment", "")) for k in ("mixup", "cutmix"))
    if mixed or cfg.get("label_smoothing"):
        parts.append("<p id='targets'>Training targets: " + (
            f"mixed batches ({_e(cfg['augment'])}), the training accuracy counting the dominant "
            "label of each mixed target" if mixed else "class labels") + (
            f"; label smoothing {_e(cfg['label_smoothing'])}" if cfg.get("label_smoothing")
            else "") + ".</p>")
    parts += [f"<p class='note warning'>warning: {_e(w)}</p>"
              for w in metrics.get("warnings") or []]
    for note in metrics.get("notes") or []:
        parts.append(f"<p class='note'>{_e(note)}</p>")
    from ..run.loggers import describe_logs  # --log tensorboard,mlflow
    parts += [f"<p class='logs'>{_e(line)}</p>" for line in describe_logs(run.path)]

    plots = run.plots
    parts.append("<h2 id='curves'>Training curves</h2><div class='row'>"
                 + _img(plots / PLOTS["accuracy"][0], PLOTS["accuracy"][1])
                 + _img(plots / PLOTS["loss"][0], PLOTS["loss"][1]) + "</div>")
    from .lr_find_section import lr_find_section
    parts.append(lr_find_section(run.path))

    if metrics.get("per_class"):
        rows = [[c, _fmt(v["precision"], 3), _fmt(v["recall"], 3), _fmt(v["f1"], 3), v["support"]]
                for c, v in metrics["per_class"].items()]
        support = sum(v["support"] for v in metrics["per_class"].values())
        rows.append(["macro average", _fmt(metrics.get("macro_precision"), 3),
                     _fmt(metrics.get("macro_recall"), 3), _fmt(metrics.get("macro_f1"), 3), support])
        rows.append(["accuracy", "", "", _fmt(metrics.get("test_accuracy"), 3), support])
        parts.append("<h2 id='metrics'>Metrics per class</h2>"
                     + _table(["class", "precision", "recall", "F1", "support"], rows, "metrics"))

    if multi:  # labels, not one class: no confusion matrix or top-class pictures
        parts.append(multilabel.section(metrics, _table, _img(
            plots / multilabel.SAMPLES, "Sample predictions (labels at their thresholds)")))
    else:
        parts.append("<h2 id='confusion'>Confusion matrix</h2>"
                     + _img(plots / PLOTS["confusion"][0], PLOTS["confusion"][1], "square"))
        parts.append("<h2 id='samples'>Sample predictions</h2>"
                     + _img(plots / PLOTS["samples"][0], PLOTS["samples"][1]))
        parts.append("<h2 id='top-losses'>Top losses</h2>"
                     + _img(plots / PLOTS["top_losses"][0], PLOTS["top_losses"][1]))

    parts.append("<h2 id='time'>Time: data wait vs compute</h2>")
    if history:
        wait = sum(r.get("data_wait_s") or 0 for r in history)
        comp = sum(r.get("compute_s") or 0 for r in history)
        total = sum(r.get("epoch_s") or 0 for r in history)
        parts.append(f"<p>Training took {total:.1f}s over {len(history)} epochs: "
                     f"{comp:.1f}s computing on batches, {wait:.1f}s waiting for them "
                     f"({100 * wait / max(wait + comp, 1e-9):.1f}% of the step time); the rest is "
                     "validation and saving.</p>")
    parts.append(_img(plots / PLOTS["timing"][0], PLOTS["timing"][1]))
    if history:
        keys = [k for k in history[0] if k != "epoch"]
        for r in history[1:]:
            keys += [k for k in r if k not in keys and k != "epoch"]
        parts.append("<h2 id='history'>History</h2>" + _table(
            ["epoch"] + keys, [[r.get("epoch")] + [_fmt(r.get(k)) for k in keys] for r in history],
            "history"))

    from .exports import export_rows
    exports = export_rows(run.path)  # `cnnkit export RUN [--int8]` files, with their numbers
    if exports:
        parts.append("<h2 id='exports'>Exports</h2>" + _table(
            ["file", "runtime", "check", "held-out accuracy", "speed (ONNX Runtime)"], exports))
    if summary:
        parts.append(f"<h2 id='model'>Model</h2><pre>{_e(summary)}</pre>")
    if cfg:
        parts.append("<h2 id='config'>Config</h2>" + _table(
            ["setting", "value"], [[k, json.dumps(v) if not isinstance(v, str) else v]
                                   for k, v in cfg.items()], "config"))
    if command:
        parts.append(f"<h2 id='command'>Command</h2><pre class='wrap'>{_e(command)}</pre>")
    if env:
        parts.append("<h2 id='env'>Environment</h2>" + _table(
            ["", ""], [[k, v if isinstance(v, str) else json.dumps(v)] for k, v in env.items()], "env"))
    parts.append("</main></body></html>\n")
    return "".join(parts)


def write_report(run_dir) -> Path:
    """Write ``report.html`` into the run directory; returns its path."""
    from ..runs import RunDir, _atomic_write_text
    run = RunDir(run_dir)
    _atomic_write_text(run.report, render_report(run.path))
    return run.report
