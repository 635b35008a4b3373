"""What ``cnnkit runs`` lists and ``cnnkit compare`` compares: one summary per run directory,
read from its files (config.json, env.json, history.csv, metrics.json), never from its
weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from .directory import RunDir

__all__ = ["NotARun", "RunSummary", "summarize", "find_runs", "open_run", "runs_table"]


class NotARun(ValueError):
    """A path given as a run directory is none (no config.json)."""


@dataclass
class RunSummary:
    name: str
    path: str
    data: str
    model: str
    epochs: int                 # epochs in history.csv
    planned: int                # the config's epochs
    status: str                 # finished | interrupted | running or killed
    best: dict                  # {"monitor", "value", "epoch"} or {}
    final: dict                 # the last epoch's accuracy/val_accuracy/loss/val_loss
    test_accuracy: float | None
    seconds: float | None       # training + evaluation + report (training only while unfinished)
    started: str                # env.json's time
    config: dict = field(repr=False, default_factory=dict)
    history: list = field(repr=False, default_factory=list)

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "history"}


def open_run(path) -> RunDir:
    """``path`` as a RunDir, or NotARun saying what it is instead."""
    path = Path(path).expanduser()
    if not path.exists():
        raise NotARun(f"{path}: no such run directory")
    run = RunDir(path)
    if not run.is_run():
        hint = (" (it holds runs: list them with `cnnkit runs " + str(path) + "`)"
                if path.is_dir() and find_runs(path) else "")
        raise NotARun(f"{path}: not a run directory (no config.json){hint}")
    return run


def _best_from_history(history: list[dict]) -> dict:
    for monitor in ("val_accuracy", "accuracy"):
        values = [(r.get(monitor), r.get("epoch")) for r in history
                  if isinstance(r.get(monitor), (int, float)) and math.isfinite(r[monitor])]
        if values:
            value, epoch = max(values, key=lambda v: v[0])
            return {"monitor": monitor, "value": value, "epoch": epoch}
    return {}


def summarize(path) -> RunSummary:
    """The summary of the run directory at ``path`` (NotARun when it is none)."""
    run = open_run(path)
    config = RunDir.read_json_or_empty(run.config_json)
    env = RunDir.read_json_or_empty(run.env)
    metrics = RunDir.read_json_or_empty(run.metrics)
    history = run.read_history()
    last = history[-1] if history else {}
    best = {k: v for k, v in (metrics.get("best") or {}).items()
            if k in ("monitor", "value", "epoch")} or _best_from_history(history)
    if metrics:
        status = "finished"
        seconds = sum(float(metrics.get(k) or 0.0) for k in
                      ("train_seconds", "evaluate_seconds", "report_seconds"))
    else:
        status = "interrupted" if (run.checkpoint / "state.json").is_file() and \
            (run.last / "config.json").is_file() else "running or killed"
        seconds = last.get("seconds")
    return RunSummary(
        name=run.path.name, path=str(run.path), data=str(env.get("data") or config.get("data", "")),
        model=str(env.get("model") or config.get("model") or "(default)"),
        epochs=len(history), planned=int(config.get("epochs") or 0), status=status, best=best,
        final={k: last[k] for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in last},
        test_accuracy=metrics.get("test_accuracy"), seconds=seconds,
        started=str(env.get("time", "")), config=config, history=history)


def find_runs(root) -> list[Path]:
    """Run directories at ``root``: itself when it is one, else its children that are
    (oldest first by start time, then name)."""
    root = Path(root).expanduser()
    if RunDir(root).is_run():
        return [root]
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and RunDir(p).is_run()]
    return sorted(found, key=lambda p: (RunDir.read_json_or_empty(p / "env.json").get("time", ""),
                                        p.name))


def _num(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _data_label(data: str, width: int = 28) -> str:
    """env.json's data line -> its source: a name, or a folder's last parts
    ('…/cifar10-jpeg/train')."""
    source = data.split(": ")[0]
    if "/" not in source:
        return _short(source, width)
    parts = Path(source).parts[-2:]
    return _short(("…/" if len(Path(source).parts) > 2 else "") + "/".join(parts), width)


def runs_table(summaries: list[RunSummary]) -> str:
    """The runs as an aligned text table, one line each."""
    header = ["run", "data", "model", "epochs", "best", "final val_acc", "test_acc", "time",
              "status"]
    lines = [header]
    for s in summaries:
        best = (f"{s.best['monitor'].replace('accuracy', 'acc')} {s.best['value']:.4f} "
                f"@{s.best['epoch']}" if s.best else "-")
        lines.append([s.name, _data_label(s.data), _short(s.model, 24),
                      f"{s.epochs}/{s.planned}", best,
                      _num(s.final.get("val_accuracy", s.final.get("accuracy"))),
                      _num(s.test_accuracy),
                      "-" if s.seconds is None else f"{s.seconds:.1f}s", s.status])
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                     for row in lines)
