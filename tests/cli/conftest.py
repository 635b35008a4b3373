"""Fixtures for the command-line tests: one tiny training run shared by the tests."""

from __future__ import annotations

import pytest

from cli_helpers import TINY


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished 2-epoch run (in-process, through cli.main) with its report."""
    from cnnkit.cli import main
    out = tmp_path_factory.mktemp("runs")
    rc = main(["train", *TINY, "--epochs", "2", "--output", str(out), "--name", "tiny",
               "--device", "cpu"])
    assert rc == 0
    return out / "tiny"
