"""Open a report.html in headless Chromium (Debian's package, driven by Playwright) and check
what it shows. Skips cleanly where Chromium or the playwright package is missing; the
screenshot is copied to $CNNKIT_ARTIFACTS when that is set."""

from __future__ import annotations

from pathlib import Path

from chromium_helper import keep_artifact, launch, sync_api

def open_report(report: Path, shot: Path) -> dict:
    """Load ``report`` in Chromium, screenshot it to ``shot``; what the page shows."""
    with sync_api().sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 3000})
            page.set_default_timeout(30_000)
            page.goto(report.resolve().as_uri())
            page.wait_for_load_state("load")
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => ({plot: e.dataset.plot, complete: e.complete, "
                       "width: e.naturalWidth, top: e.getBoundingClientRect().top, "
                       "bottom: e.getBoundingClientRect().bottom}))")
            title = page.title()
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    keep_artifact(shot)
    return {"images": {i["plot"]: i for i in images}, "title": title}


def check_report_page(report: Path, shot: Path) -> None:
    seen = open_report(report, shot)
    images = seen["images"]
    assert set(images) == {"accuracy", "loss", "confusion_matrix", "samples", "top_losses", "timing"}
    for name, img in images.items():
        assert img["complete"] and img["width"] > 100, f"{name} did not load: {img}"
    for name in ("accuracy", "loss", "confusion_matrix"):
        assert images[name]["bottom"] <= 3000, f"{name} is below the first screen: {images[name]}"
    assert seen["title"].startswith("cnnkit run")
    from PIL import Image
    with Image.open(shot) as img:
        assert img.size == (1200, 3000)
        import numpy as np
        small = np.asarray(img.convert("RGB").resize((120, 300))).reshape(-1, 3)
        colours = len(np.unique(small, axis=0))
        assert colours > 200  # pictures were drawn, not an empty page
