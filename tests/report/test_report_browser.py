"""Open report.html in a real headless Chromium: the pictures load and the curves and the
confusion matrix are on the first screen of a 1200×3000 window."""

from __future__ import annotations

import pytest

from report_browser import check_report_page

pytestmark = pytest.mark.browser


def test_report_opens_in_chromium(report_run, tmp_path):
    check_report_page(report_run / "report.html", tmp_path / "report_tiny.png")


@pytest.mark.parametrize("width", [1280, 390])
def test_report_fits_laptop_and_phone_windows(report_run, width):
    """Nothing pushes the page wider than the window; the command wraps inside its box; a
    phone gets the narrow pictures (their own size fits the window, so text stays legible)."""
    from chromium_helper import launch, sync_api

    with sync_api().sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto((report_run / "report.html").resolve().as_uri())
            page.wait_for_load_state("load")
            page_width = page.evaluate("document.documentElement.scrollWidth")
            command = page.eval_on_selector("#command + pre", "e => [e.scrollWidth, e.clientWidth]")
            top = page.eval_on_selector("img[data-plot=top_losses]",
                                        "e => [e.naturalWidth, e.getBoundingClientRect().width]")
        finally:
            browser.close()
    assert page_width <= width
    assert command[0] <= command[1], command  # wrapped, not cut off on the right
    natural, shown = top
    if width < 700:
        assert natural <= 420 and shown >= 0.75 * natural, top  # the narrow picture, ~full size
    else:
        assert natural > 1000 and shown >= 0.9 * natural, top
