"""A real (tiny) training run whose report the tests read: 256 bundled digits, 2 epochs."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def report_run(tmp_path_factory):
    from cnnkit.config import TrainConfig
    from cnnkit.experiment import train
    out = tmp_path_factory.mktemp("report-runs")
    result = train(TrainConfig(limit=256, model="mnist-1conv", batch_size=32, epochs=2,
                               verbose="0", output=str(out), name="tiny", device="cpu"),
                   log=lambda *a: None)
    assert result.run.report.is_file()
    return result.run.path


@pytest.fixture
def drawings(monkeypatch):
    """The report pictures saved during the test (``report.drawing.Drawing``), to read what
    each one drew: its texts, series, bars and legend."""
    from cnnkit.report.drawing import Drawing
    saved, original = [], Drawing.save

    def keep(self, path):
        saved.append(self)
        return original(self, path)

    monkeypatch.setattr(Drawing, "save", keep)
    return saved
