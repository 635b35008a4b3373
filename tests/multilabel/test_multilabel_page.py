"""The service page for a multi-label model, in headless Chromium: it lists every label at
or above its threshold (not the top classes). Skips where Chromium or playwright is missing."""

import pytest

from cnnkit.serve import create_app, running

from chromium_helper import launch, sync_api
import model_helpers

pytestmark = pytest.mark.browser


def test_page_lists_the_labels_above_their_thresholds(tmp_path):
    from PIL import Image
    model = model_helpers.tiny_model()
    model.multi_label = True
    model.thresholds = [0.0, 0.0, 1.0, 1.0]  # ant and bee always; cat and dog never
    picture = tmp_path / "upload.png"
    Image.new("RGB", (40, 30), (200, 120, 40)).save(picture)
    with sync_api().sync_playwright() as p, running(create_app(model)) as url:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 900})
            page.set_default_timeout(20_000)
            page.goto(url + "/")
            page.wait_for_function(
                "document.getElementById('model').textContent.includes('4 classes')")
            page.set_input_files("#file", str(picture))
            # the one-result page (#result) or the page with a card per file (#results)
            page.wait_for_selector("#result.shown, #results .shown")
            shown = page.locator("#predictions li .class, "
                                 "#results .predictions li .class").all_inner_texts()
            status = page.inner_text("#status")
        finally:
            browser.close()
    assert sorted(shown) == ["ant", "bee"]
    assert "ant:" in status and "bee:" in status and "cat" not in status
