"""The page in a real headless Chromium (Debian's package, driven by Playwright).

Skips cleanly where Chromium or the playwright package is missing. The screenshot is kept
under the test's tmp dir, and copied to $CNNKIT_ARTIFACTS when that is set.
"""

import contextlib

import pytest

from cnnkit.serve import create_app, running

from chromium_helper import keep_artifact, launch, sync_api

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    with sync_api().sync_playwright() as p:
        b = launch(p)
        try:
            yield b
        finally:
            b.close()


@contextlib.contextmanager
def uploaded(browser, model, picture, width: int):
    """The service's page, ``width`` px wide, once it has shown its result for ``picture``."""
    with running(create_app(model)) as url:
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.set_default_timeout(20_000)
        try:
            page.goto(url + "/")
            page.wait_for_function(
                "document.getElementById('model').textContent.includes('4 classes')")
            page.set_input_files("#file", str(picture))
            page.wait_for_selector("#result.shown")
            yield page
        finally:
            page.close()


def test_upload_shows_prediction_and_overlay(browser, tiny_model, tmp_path):
    from PIL import Image, ImageDraw

    picture = tmp_path / "upload.png"
    img = Image.new("RGB", (96, 64), (40, 60, 90))
    draw = ImageDraw.Draw(img)
    draw.ellipse((10, 10, 50, 50), fill=(240, 200, 40))
    draw.rectangle((60, 30, 90, 60), fill=(200, 40, 40))
    img.save(picture)
    with uploaded(browser, tiny_model, picture, width=900) as page:
        rows = page.locator("#predictions li")
        assert rows.count() == 4
        top_class = rows.first.locator(".class").inner_text()
        assert top_class in ("ant", "bee", "cat", "dog")
        assert page.inner_text("#status").startswith(top_class + ":")
        # the overlay is a decoded PNG the browser actually drew
        size = page.eval_on_selector(
            "#overlay", "img => [img.complete, img.naturalWidth, img.naturalHeight, "
                        "img.src.slice(0, 22)]")
        assert size == [True, 320, 213, "data:image/png;base64,"]
        preview = page.eval_on_selector("#preview", "i => i.complete && i.naturalWidth")
        assert preview == 96
        shot = tmp_path / "serve_page.png"
        page.screenshot(path=str(shot), full_page=True)

        # a bad upload shows the server's message and the page keeps working
        bad = tmp_path / "notes.png"
        bad.write_bytes(b"not an image at all")
        page.set_input_files("#file", str(bad))
        page.wait_for_selector("#status.error")
        assert "not a recognised image" in page.inner_text("#status")
    assert shot.stat().st_size > 10_000
    keep_artifact(shot)


def test_result_card_names_the_file(browser, tiny_model, tmp_path):
    from PIL import Image

    picture = tmp_path / "holiday photo <1>.png"  # a name that must be shown as text, not HTML
    Image.new("RGB", (40, 30), (200, 120, 40)).save(picture)
    with uploaded(browser, tiny_model, picture, width=390) as page:
        heading = page.inner_text("#result #file-name")
        caption = page.inner_text("#preview-caption")
    assert heading.startswith("holiday photo <1>.png") and heading.endswith(" KB"), heading
    assert caption == "Your image: holiday photo <1>.png"
