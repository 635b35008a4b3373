"""report.html's learning-rate finder section: the sweep's plot (``lr_find.png``) and its
suggestions (``lr_find.json``), written by ``cnnkit train --lr-find`` / ``--lr-find-only``."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["lr_find_section"]


def lr_find_section(run_path: Path) -> str:
    """The section's HTML, or '' for a run without a sweep."""
    from .html import _e, _img, _table
    run_path = Path(run_path)
    if not (run_path / "lr_find.json").is_file() and not (run_path / "lr_find.png").is_file():
        return ""
    try:
        record = json.loads((run_path / "lr_find.json").read_text())
    except (OSError, json.JSONDecodeError):
        record = {}
    chosen = record.get("chosen") or {}
    rows = [[name, f"{lr:.3e}",
             "trained with this rate" if name == chosen.get("suggestion") else ""]
            for name, lr in (record.get("suggestions") or {}).items()]
    settings = record.get("settings") or {}
    text = (f"<p>{_e(settings.get('steps_run', '?'))} training steps at rates rising "
            f"exponentially from {_e(settings.get('start_lr', '?'))} to "
            f"{_e(settings.get('end_lr', '?'))}"
            + (f"; stopped early: {_e(record['stopped'])}" if record.get("stopped") else "")
            + ". The weights and optimizer were put back before training"
            + (f"; training used the {_e(chosen['suggestion'])} suggestion."
               if chosen else "; the model was not trained (--lr-find-only).") + "</p>")
    if record.get("warning"):
        text += f"<p class='note'>{_e(record['warning'])}</p>"
    return ("<h2 id='lr-find'>Learning-rate finder</h2>" + text
            + _img(run_path / "lr_find.png", "Learning-rate finder: loss vs learning rate")
            + (_table(["suggestion", "learning rate", ""], rows, "lr-find") if rows else ""))
