"""The engine tier: every test in tests/core carries the ``engine`` marker, so
``pytest -m engine`` runs the loop, models, layers, losses and callbacks alone."""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.engine)
