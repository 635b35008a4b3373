"""Progress output: the tqdm bar's width when the terminal reports none."""

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


@pytest.mark.parametrize("env", ["0", None])
def test_zero_width_terminal_gets_an_80_column_bar(monkeypatch, env):
    _terminal(monkeypatch, 0, env)
    bars, text = _run_bar(monkeypatch)
    assert all(b.ncols == 80 and not b.dynamic_ncols for b in bars)
    lines = text.split("\n")
    assert lines[-1] == "" and len(lines) == 3  # one finished bar per epoch, nothing else
    for epoch, line in enumerate(lines[:-1], start=1):
        shown = [s for s in line.split("\r") if s]
        assert shown and all(s.startswith(f"Epoch {epoch}/2:") and len(s) <= 80 for s in shown)
        assert shown[0].endswith("0/3 [00:00<?, ?step/s]") and len(shown[0]) == 80
        assert "100%" in shown[-1] and "3/3" in shown[-1]


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
    shown = [s for s in text.replace("\n", "\r").split("\r") if s]
    assert shown and all(s.startswith("Epoch 1/1:") for s in shown), text
    assert len(shown[0]) == 80 and shown[0].endswith("?step/s]"), text
    assert "3/3" in shown[-1] and "loss: 0.5000" in shown[-1], text
