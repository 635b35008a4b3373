"""History: what ``fit`` returns, with Keras's ``.history`` dict of per-epoch lists."""

from __future__ import annotations


class History:
    def __init__(self):
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.params: dict = {}

    def append(self, epoch: int, logs: dict) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            # per-class metrics (F1Score(average=None)) stay lists, as Keras keeps arrays
            value = list(value) if isinstance(value, (list, tuple)) else float(value)
            self.history.setdefault(key, []).append(value)

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"
