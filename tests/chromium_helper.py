"""Headless Chromium for the browser tests: Debian's package driven by Playwright.

Never `playwright install` (no downloads here): the system Chromium is launched with flags
that keep it off the network. Tests skip cleanly where Chromium or playwright is missing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CNNKIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def sync_api():
    """playwright.sync_api, or skip the test where it or Chromium is missing."""
    api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    return api


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=60_000)


def keep_artifact(shot: Path) -> None:
    """Copy a screenshot to $CNNKIT_ARTIFACTS when that is set."""
    if os.environ.get("CNNKIT_ARTIFACTS"):
        out = Path(os.environ["CNNKIT_ARTIFACTS"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, out / shot.name)
