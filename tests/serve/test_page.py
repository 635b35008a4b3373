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
            page.wait_for_selector(".card.shown")
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
        rows = page.locator(".card .predictions li")
        assert rows.count() == 4
        top_class = rows.first.locator(".class").inner_text()
        assert top_class in ("ant", "bee", "cat", "dog")
        assert page.inner_text("#status").startswith(top_class + ":")
        # the overlay is a decoded PNG the browser actually drew
        size = page.eval_on_selector(
            ".card .overlay", "img => [img.complete, img.naturalWidth, img.naturalHeight, "
                        "img.src.slice(0, 22)]")
        assert size == [True, 320, 213, "data:image/png;base64,"]
        preview = page.eval_on_selector(".card .preview", "i => i.complete && i.naturalWidth")
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
        heading = page.inner_text(".card .file-name")
        caption = page.inner_text(".card .preview-caption")
    assert heading.startswith("holiday photo <1>.png") and heading.endswith(" KB"), heading
    assert caption == "Your image: holiday photo <1>.png"


def _pictures(tmp_path, names) -> list:
    from PIL import Image
    paths = []
    for i, name in enumerate(names):
        path = tmp_path / name
        Image.new("RGB", (24 + 8 * i, 20), (40 * i, 200 - 30 * i, 90)).save(path)
        paths.append(path)
    return paths


def _opened(browser, url):
    page = browser.new_page(viewport={"width": 900, "height": 900})
    page.set_default_timeout(20_000)
    page.goto(url + "/")
    page.wait_for_function("document.getElementById('model').textContent.includes('4 classes')")
    return page


def _cards(page, n: int) -> list[dict]:
    """Once ``n`` cards have their answer (or error): each card's name, first class, state."""
    page.wait_for_function(f"document.querySelectorAll('.card.shown, .card.failed').length === {n}")
    return page.eval_on_selector_all(".card", """cards => cards.map(c => ({
        name: c.querySelector('.file-name').firstChild.textContent,
        state: c.classList.contains('shown') ? 'shown' : (c.classList.contains('failed') ? 'failed' : 'pending'),
        rows: c.querySelectorAll('.predictions li').length,
        error: c.classList.contains('failed') ? c.querySelector('.card-status').textContent : '',
        preview: c.querySelector('.preview').naturalWidth}))""")


def test_several_files_chosen_at_once_get_a_card_each(browser, tiny_model, tmp_path):
    files = _pictures(tmp_path, ["a.png", "b.png", "c.png"])
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with running(create_app(tiny_model)) as url:
        page = _opened(browser, url)
        assert page.eval_on_selector("#file", "i => i.multiple")
        page.set_input_files("#file", [str(p) for p in files] + [str(tmp_path / "broken.png")])
        cards = _cards(page, 4)
        shot = tmp_path / "serve_page_several.png"
        page.screenshot(path=str(shot), full_page=True)
        assert [c["name"] for c in cards] == ["a.png", "b.png", "c.png", "broken.png"]
        assert [c["state"] for c in cards] == ["shown"] * 3 + ["failed"]
        assert [c["rows"] for c in cards[:3]] == [4, 4, 4]
        assert [c["preview"] for c in cards[:3]] == [24, 32, 40]  # each card shows its own file
        assert "not a recognised image" in cards[3]["error"]
        assert page.inner_text("#status") == "3 of 4 images classified; 1 failed (see its card)"
        # a second choice replaces the cards of the first
        page.set_input_files("#file", [str(files[1])])
        page.wait_for_function("document.querySelectorAll('.card').length === 1")
        assert [c["name"] for c in _cards(page, 1)] == ["b.png"]
        page.close()
    keep_artifact(shot)


_FILES_JS = """async ([items]) => {
    const dt = new DataTransfer();
    for (const [name, b64] of items) {
        const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
        dt.items.add(new File([bytes], name, { type: "image/png" }));
    }
    return dt;
}"""


def _data_transfer(page, paths, names=None):
    import base64
    items = [[name, base64.b64encode(p.read_bytes()).decode()]
             for name, p in zip(names or [p.name for p in paths], paths)]
    return page.evaluate_handle(_FILES_JS, [items])


def test_several_files_dropped_at_once_get_a_card_each(browser, tiny_model, tmp_path):
    files = _pictures(tmp_path, ["one.png", "two.png"])
    with running(create_app(tiny_model)) as url:
        page = _opened(browser, url)
        dt = _data_transfer(page, files)
        page.dispatch_event("#drop", "drop", {"dataTransfer": dt})
        cards = _cards(page, 2)
        assert [(c["name"], c["state"], c["rows"]) for c in cards] == \
            [("one.png", "shown", 4), ("two.png", "shown", 4)]
        assert page.inner_text("#status") == "2 of 2 images classified"
        page.close()


def test_a_pasted_image_is_uploaded(browser, tiny_model, tmp_path):
    (picture,) = _pictures(tmp_path, ["clip.png"])
    with running(create_app(tiny_model)) as url:
        page = _opened(browser, url)
        # what Chromium puts on the clipboard for a copied picture: one file called image.png
        dt = _data_transfer(page, [picture], names=["image.png"])
        page.evaluate("dt => document.dispatchEvent(new ClipboardEvent('paste', "
                      "{clipboardData: dt, bubbles: true}))", dt)
        (card,) = _cards(page, 1)
        assert (card["name"], card["state"], card["rows"], card["preview"]) == \
            ("pasted-image-1.png", "shown", 4, 24)
        top = page.inner_text(".card .predictions li .class")
        assert page.inner_text("#status").startswith(top + ":")
        # pasted text is not an image: one line saying so, the card stays
        page.evaluate("""() => { const dt = new DataTransfer(); dt.setData('text/plain', 'hello');
            document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt})); }""")
        assert "Paste an image" in page.inner_text("#status.error")
        assert page.locator(".card.shown").count() == 1
        page.close()
