"""``cnnkit runs [DIR]`` and ``cnnkit compare RUN RUN ...``: the command bodies (cli.py
adds the parsers with :func:`add_commands`)."""

from __future__ import annotations

import json
from pathlib import Path

from . import cli_args as A

__all__ = ["add_commands", "cmd_runs", "cmd_compare"]

_RUNS_EXAMPLES = """
  cnnkit runs                       # the runs under ./runs
  cnnkit runs experiments/ --json
"""
_COMPARE_EXAMPLES = """
  cnnkit compare runs/cifar10-jpeg-simple-cnn runs/cifar10-jpeg-simple-cnn-2
  cnnkit compare runs/                    # every run under runs/
  cnnkit compare runs/a runs/b --output a-vs-b.html
"""


def add_commands(sub, make) -> None:
    """Add ``runs`` and ``compare`` to the subparsers ``sub`` (``make``: cli._sub)."""
    p = make(sub, "runs", "list run directories: data, model, epochs, best and final metrics",
             "One line per run directory under DIR (or DIR itself when it is one): its data, "
             "model, epochs run/planned, best monitored metric and epoch, final val_accuracy, "
             "test accuracy, time (training + evaluation + report) and status.",
             _RUNS_EXAMPLES)
    p.add_argument("dir", nargs="?", default="runs", metavar="DIR",
                   help="a folder of runs or one run [default: runs]")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_runs)

    p = make(sub, "compare", "compare runs on one HTML page: curves overlaid, settings that differ",
             "Write one self-contained HTML page (pictures inlined, nothing fetched) with the "
             "runs' summary table, their loss/accuracy/val_loss/val_accuracy curves per epoch "
             "overlaid (one colour per run) and the settings that differ. A folder of runs "
             "stands for all of them.", _COMPARE_EXAMPLES)
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories (or folders of runs)")
    p.add_argument("--output", type=A.output_file, default="compare.html", metavar="FILE",
                   help="where to write the page [default: compare.html]")
    p.set_defaults(func=cmd_compare)


def cmd_runs(args) -> int:
    from .run.listing import NotARun, find_runs, runs_table, summarize
    root = Path(args.dir).expanduser()
    if not root.is_dir():
        raise NotARun(f"{args.dir}: no such folder (give a folder of runs, e.g. runs)")
    found = find_runs(root)
    if not found:
        raise NotARun(f"{args.dir}: holds no run directories (folders with a config.json)")
    summaries = [summarize(p) for p in found]
    if args.json:
        print(json.dumps([s.to_dict() for s in summaries], indent=2))
    else:
        print(runs_table(summaries))
    return 0


def _expand(items: list[str]) -> list[Path]:
    from .run.listing import NotARun, find_runs, open_run
    runs: list[Path] = []
    for item in items:
        path = Path(item).expanduser()
        found = find_runs(path) if path.is_dir() else []
        if not found:
            open_run(path)  # raises NotARun saying what it is
        runs += [p for p in found if p not in runs]
    if len(runs) < 2:
        raise NotARun(f"compare needs two or more runs, got {len(runs)} ({' '.join(items)}): "
                      "give more run directories")
    return runs


def cmd_compare(args) -> int:
    from .report.compare import write_compare
    print(f"compare: {write_compare(_expand(args.runs), args.output)}")
    return 0
