"""A training run around the one loop (``cnnkit.train.engine``).

    data.py          the splits a TrainConfig names (one folder scan, one gather per split)
    build.py         an ordinary run's model, compile settings, augmentation, schedule: its builder
    orchestrator.py  the one run: builder -> Plan, run directory, Ctrl-C, resume, finish
    recorder.py      history.csv, checkpoints, best/ and last/ as training goes
    loader.py        the one resumable, rank-sharded loader and the one shard rule
    evaluate.py      the one evaluation path (validation, recipes, metrics, evaluate, report)
    report.py        the end of a run: metrics.json, plots, report.html, the final lines
    timer.py         the one clock
    checkpoint.py    safetensors + JSON checkpoints and RNG states
    directory.py     run directories and the files a run starts with
    launch.py        torchrun for --nproc (apart from the training)
"""

from .orchestrator import Plan, TrainResult, train  # noqa: F401

__all__ = ["train", "TrainResult", "Plan"]
