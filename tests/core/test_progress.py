"""Progress output: the tqdm bar in a terminal (and its width when the terminal reports none)."""

import io
import os
import subprocess
import sys

import pytest

from cnnkit.train.progress import EpochProgress, terminal_width

pytest.importorskip("tqdm")

LOGS = {"loss": 0.5, "accuracy": 0.75}


class FakeTTY(io.StringIO):
    def isatty(self):
        return True

    def fileno(self):
        return 1


def _terminal(monkeypatch, columns: int, env: str | None):
    monkeypatch.setattr(os, "get_terminal_size", lambda fd=None: os.terminal_size((columns, 24)))
    if env is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", env)


@pytest.mark.parametrize("columns,env,expected", [
    (0, "0", None), (0, None, None), (0, "x", None), (120, "0", 120), (120, None, 120),
    (0, "100", 100), (120, "60", 60),
])
def test_terminal_width(monkeypatch, columns, env, expected):
    _terminal(monkeypatch, columns, env)
    assert terminal_width() == expected


def test_terminal_width_without_a_terminal(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)

    def no_terminal(fd=None):
        raise OSError("Inappropriate ioctl for device")

    monkeypatch.setattr(os, "get_terminal_size", no_terminal)
    assert terminal_width(io.StringIO()) is None


def _run_bar(monkeypatch, epochs=2, steps=3):
    out = FakeTTY()
    monkeypatch.setattr(sys, "stdout", out)
    bars = []
    for epoch in range(epochs):
        bar = EpochProgress(epoch, epochs, steps, verbose=1, refresh_s=0)
        for step in range(steps):
            bar.update(step + 1, lambda: LOGS)
        bars.append(bar.bar)
        bar.close(LOGS)
    return bars, out.getvalue()


def _frames(text: str) -> list[str]:
    """What a terminal showed, frame by frame (tqdm's blank clearing frames left out)."""
    return [s for s in text.replace("\n", "\r").split("\r") if s.strip()]


@pytest.mark.parametrize("env", ["0", None])
def test_zero_width_terminal_gets_an_80_column_bar(monkeypatch, env):
    _terminal(monkeypatch, 0, env)
    bars, text = _run_bar(monkeypatch)
    assert all(b.ncols == 80 and not b.dynamic_ncols for b in bars)
    lines = text.split("\n")
    assert lines[-1] == "" and len(lines) == 3  # one epoch line per epoch, nothing else
    for epoch, line in enumerate(lines[:-1], start=1):
        *bar, done = _frames(line)
        assert bar and all(s.startswith(f"Epoch {epoch}/2:") and len(s) <= 80 for s in bar)
        assert bar[0].endswith("0/3 [00:00<?, ?step/s]") and len(bar[0]) == 80
        assert "3/3" in bar[-1]
        # the finished bar gives way to the whole epoch line, never cut at the width
        assert done.startswith(f"Epoch {epoch}/2 - 3 steps - ") and done.endswith(
            "loss: 0.5000 - accuracy: 0.7500")


def test_sized_terminal_is_followed_and_columns_fixes_the_width(monkeypatch):
    _terminal(monkeypatch, 120, None)
    bars, _ = _run_bar(monkeypatch, epochs=1)
    assert bars[0].dynamic_ncols
    _terminal(monkeypatch, 120, "100")
    bars, text = _run_bar(monkeypatch, epochs=1)
    assert bars[0].ncols == 100 and not bars[0].dynamic_ncols
    assert max(len(s) for s in text.replace("\n", "\r").split("\r")) <= 100


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_a_real_pty_without_a_size(tmp_path):
    """End to end: a pty opened with zero columns (as some containers and CI runners give)."""
    import fcntl
    import pty
    import struct
    import termios

    script = (
        "from cnnkit.train.progress import EpochProgress\n"
        "bar = EpochProgress(0, 1, 3, verbose=1, refresh_s=0)\n"
        "for s in range(3):\n"
        "    bar.update(s + 1, lambda: {'loss': 0.5})\n"
        "bar.close({'loss': 0.5})\n"
    )
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 0, 0, 0))
    env = {**os.environ, "COLUMNS": "0"}
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=slave, stdout=slave, stderr=slave,
                            env=env, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=120) == 0, b"".join(chunks).decode(errors="replace")
    text = b"".join(chunks).decode(errors="replace")
    *shown, done = _frames(text)
    assert shown and all(s.startswith("Epoch 1/1:") for s in shown), text
    assert len(shown[0]) == 80 and shown[0].endswith("?step/s]"), text
    assert "3/3" in shown[-1], text
    assert done.startswith("Epoch 1/1 - 3 steps") and done.endswith("loss: 0.5000"), text


# ------------------------------------------------------------------ output that is not a terminal

class FakeClock:
    """Seconds that pass only when the test says so."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _piped_epoch(steps=10, seconds_per_step=4.0, batch=32, interval_s=15.0, verbose=1):
    clock, out = FakeClock(), io.StringIO()
    bar = EpochProgress(0, 3, steps, verbose=verbose, clock=clock, stream=out, interval_s=interval_s)
    for step in range(steps):
        clock.now += seconds_per_step
        bar.update(step + 1, lambda: LOGS, images=(step + 1) * batch)
    bar.close(LOGS)
    return out.getvalue().splitlines()


def test_piped_epoch_prints_a_line_at_the_interval():
    lines = _piped_epoch()  # 10 steps of 4 s, 32 images each: lines at 16 s and 32 s
    assert len(lines) == 3, lines
    assert lines[0] == ("Epoch 1/3 - step 4/10 (40%) - 8 images/s - 16s elapsed - ETA 24s"
                        " - loss: 0.5000 - accuracy: 0.7500")
    assert lines[1].startswith("Epoch 1/3 - step 8/10 (80%) - 8 images/s - 32s elapsed - ETA 8s")
    assert lines[2] == ("Epoch 1/3 - 10 steps - 40.0s (4000ms/step, 8 images/s)"
                        " - loss: 0.5000 - accuracy: 0.7500")


def test_piped_epoch_interval_and_verbosity():
    assert len(_piped_epoch(interval_s=1.0)) == 10  # a line per step but the last, + the epoch
    assert len(_piped_epoch(interval_s=0)) == 1     # lines off: the epoch line alone
    assert len(_piped_epoch(verbose=2)) == 1        # Keras's verbose=2: one line per epoch
    assert _piped_epoch(verbose=0) == []


def test_interval_from_the_environment(monkeypatch):
    from cnnkit.train.progress import line_interval

    monkeypatch.delenv("CNNKIT_PROGRESS_INTERVAL", raising=False)
    assert line_interval() == 15.0
    monkeypatch.setenv("CNNKIT_PROGRESS_INTERVAL", "2.5")
    assert line_interval() == 2.5
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv("CNNKIT_PROGRESS_INTERVAL", bad)
        with pytest.raises(ValueError, match="CNNKIT_PROGRESS_INTERVAL=.* is not a number of seconds"):
            line_interval()


def test_terminal_bar_shows_images_per_second(monkeypatch):
    _terminal(monkeypatch, 120, None)
    out = FakeTTY()
    clock = FakeClock()
    bar = EpochProgress(0, 1, 4, verbose=1, refresh_s=0, clock=clock, stream=out)
    for step in range(4):
        clock.now += 0.5
        bar.update(step + 1, lambda: LOGS, images=(step + 1) * 64)
    bar.close(LOGS)
    frames = _frames(out.getvalue())
    assert any("4/4" in f and "128 images/s - loss: 0.5000" in f for f in frames), frames


def test_fit_piped_prints_step_lines(monkeypatch, capsys):
    """The engine feeds the images it has seen: a piped fit prints step lines with images/s."""
    import numpy as np

    import cnnkit

    monkeypatch.setenv("CNNKIT_PROGRESS_INTERVAL", "1e-9")  # a line at every step
    model = cnnkit.Sequential([cnnkit.layers.Input((8, 8, 1)), cnnkit.layers.Flatten(),
                               cnnkit.layers.Dense(3)])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).random((40, 8, 8, 1), dtype=np.float32)
    y = np.arange(40) % 3
    model.fit(x, y, epochs=1, batch_size=10, verbose="auto")
    lines = capsys.readouterr().out.splitlines()
    steps = [ln for ln in lines if " - step " in ln]
    assert [ln.split(" - ")[1] for ln in steps] == ["step 1/4 (25%)", "step 2/4 (50%)",
                                                    "step 3/4 (75%)"], lines
    assert all("images/s - " in ln and "ETA" in ln and "loss: " in ln for ln in steps), lines
    assert lines[-1].startswith("Epoch 1/1 - 4 steps - ") and "images/s" in lines[-1], lines


# ------------------------------------------------------------------ other long work

def test_task_lines_at_the_interval_then_a_closing_line():
    from cnnkit.train.progress import Task

    clock, out = FakeClock(), io.StringIO()
    with Task("decoding photos", total=1000, unit="file", clock=clock, stream=out,
              interval_s=10) as task:
        for _ in range(10):
            clock.now += 3
            task.advance(100)
    lines = out.getvalue().splitlines()
    assert lines == ["decoding photos: 400/1000 files (40%) - 33.3 files/s - 12s elapsed - ETA 18s",
                     "decoding photos: 800/1000 files (80%) - 33.3 files/s - 24s elapsed - ETA 6s",
                     "decoding photos: 1000 files in 30s"]


def test_quick_task_is_silent_and_bytes_are_megabytes():
    from cnnkit.train.progress import Task, track

    out = io.StringIO()
    assert list(track(range(5), "quick", stream=out, interval_s=15)) == list(range(5))
    assert out.getvalue() == ""
    clock = FakeClock()
    with Task("downloading x.tar.gz", total=200_000_000, unit="B", clock=clock, stream=out,
              interval_s=10) as task:
        clock.now += 20
        task.advance(50_000_000, note="mirror 1")
    assert out.getvalue().splitlines() == [
        "downloading x.tar.gz: 50.0/200.0 MB (25%) - 2.5 MB/s - 20s elapsed - ETA 1m00s - mirror 1",
        "downloading x.tar.gz: 50.0 MB in 20s"]


def test_task_in_a_terminal_is_a_bar_that_clears(monkeypatch):
    from cnnkit.train.progress import Task

    _terminal(monkeypatch, 100, None)
    out = FakeTTY()
    with Task("evaluating", total=3, unit="batch", stream=out, delay_s=0) as task:
        for _ in range(3):
            task.advance()
    frames = _frames(out.getvalue())
    assert frames and all(f.startswith("evaluating:") for f in frames), frames
    assert "0/3" in frames[0] and not out.getvalue().endswith("\n")  # cleared: nothing left


def test_heartbeat_prints_while_a_long_stage_runs():
    import time

    from cnnkit.train.progress import Task

    out = io.StringIO()
    with Task("exporting model.onnx", total=2, unit="stage", stream=out, interval_s=0.05,
              heartbeat=True, rate=False) as task:
        task.advance(0, note="tracing")
        time.sleep(0.4)  # one long stage, no advance() calls
        task.advance(2)
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3, lines
    assert lines[0].startswith("exporting model.onnx: 0/2 stages (0%) - 0s elapsed - tracing"), lines
    assert lines[-1].startswith("exporting model.onnx: 2 stages in ")


def _tiny_compiled():
    import numpy as np

    import cnnkit

    model = cnnkit.Sequential([cnnkit.layers.Input((8, 8, 1)), cnnkit.layers.Flatten(),
                               cnnkit.layers.Dense(3)])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).random((40, 8, 8, 1), dtype=np.float32)
    return model, x, np.arange(40) % 3


def test_evaluate_and_predict_show_progress(monkeypatch, capsys):
    monkeypatch.setenv("CNNKIT_PROGRESS_INTERVAL", "1e-9")
    model, x, y = _tiny_compiled()
    model.evaluate(x, y, batch_size=10, verbose=1)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("evaluating: 1/4 batches (25%) - ") and "ETA" in err[0], err
    assert err[-1].startswith("evaluating: 4 batches in "), err
    model.predict(x, batch_size=10, verbose=1)
    assert capsys.readouterr().err.startswith("predicting: 1/4 batches (25%)")
    model.evaluate(x, y, batch_size=10, verbose=0)
    model.predict(x, batch_size=10)  # Model.predict's default verbose=0: silent
    assert capsys.readouterr().err == ""


def test_export_shows_its_stages(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("CNNKIT_PROGRESS_INTERVAL", "1e-9")
    from cnnkit.export import export

    model, _, _ = _tiny_compiled()
    export(model, tmp_path / "m.pt", n_check=4)
    err = capsys.readouterr().err.splitlines()
    stages = [ln for ln in err if ln.startswith("exporting m.pt: ")]
    assert stages[0] == "exporting m.pt: 0/3 stages (0%) - 0s elapsed - tracing the model", err
    assert any(ln.endswith(" - writing torchscript") for ln in stages), err
    assert any(ln.endswith(" - checking torchscript against PyTorch on 4 images") for ln in stages), err
    assert stages[-1].startswith("exporting m.pt: 3 stages in "), err


def test_track_over_an_iterable_without_a_length():
    import torch

    from cnnkit.train.progress import track

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(range(3))

    loader = torch.utils.data.DataLoader(Stream(), batch_size=None)
    out = io.StringIO()
    assert [int(b) for b in track(loader, "evaluating", stream=out, interval_s=1e-9)] == [0, 1, 2]
    assert out.getvalue().splitlines()[0].startswith("evaluating: 1 item - ")


@pytest.mark.parametrize("verbose,shown", [("auto", True), (1, True), (2, False), (0, False)])
def test_validation_inside_fit_shows_progress(monkeypatch, capsys, verbose, shown):
    monkeypatch.setenv("CNNKIT_PROGRESS_INTERVAL", "1e-9")
    model, x, y = _tiny_compiled()
    model.fit(x, y, epochs=1, batch_size=10, validation_data=(x, y), verbose=verbose)
    err = capsys.readouterr().err
    assert ("evaluating: 1/" in err) == shown, err
