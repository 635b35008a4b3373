"""Open report.html in a real headless Chromium: the pictures load and the curves and the
confusion matrix are on the first screen of a 1200×3000 window."""

from __future__ import annotations

import pytest

from report_browser import check_report_page

pytestmark = pytest.mark.browser


def test_report_opens_in_chromium(report_run, tmp_path):
    check_report_page(report_run / "report.html", tmp_path / "report_tiny.png")
