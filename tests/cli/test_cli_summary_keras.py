"""``cnnkit summary RUN`` and the run's summary.txt / report model section print Keras's layer
names and channels-last shapes (issue 19 item 3)."""

from __future__ import annotations

from cnnkit.cli import main


def test_summary_of_a_run_is_keras_style(tiny_run, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["summary", str(tiny_run)]) == 0
    out = capsys.readouterr().out
    # mnist-1conv: Conv32-Pool-Flatten-Dense10 on 28x28x1
    assert "conv2d (Conv2D)" in out and "(None, 26, 26, 32)" in out
    assert "max_pooling2d (MaxPooling2D)" in out and "(None, 13, 13, 32)" in out
    assert "dense (Dense)" in out and "(None, 10)" in out
    assert "(None, 32, 26, 26)" not in out  # no NCHW shapes
    saved = (tiny_run / "summary.txt").read_text()
    assert "conv2d (Conv2D)" in saved and "(None, 26, 26, 32)" in saved
    report = (tiny_run / "report.html").read_text()  # its model section shows summary.txt
    assert "conv2d (Conv2D)" in report and "(None, 26, 26, 32)" in report
