"""What the page's several-files upload relies on, server side: it sends one /explain request
per file, several at once (PARALLEL in static/index.html), and each answer must name its own
file and match that file alone, whatever else is in flight."""

import concurrent.futures as cf

import httpx
import pytest

from cnnkit.serve import create_app, running


def test_page_offers_several_files_and_paste():
    from importlib import resources
    page = resources.files("cnnkit.serve").joinpath("static/index.html").read_text("utf-8")
    assert '<input id="file" type="file" accept="image/*" multiple>' in page
    assert 'addEventListener("paste"' in page and "e.dataTransfer.files)" in page


def test_parallel_explain_requests_each_answer_their_own_file(tiny_model, encode):
    images = {f"photo {i}.png": encode((20 + 3 * i, 30), seed=i) for i in range(6)}
    with running(create_app(tiny_model, max_wait_ms=50)) as url, \
            httpx.Client(base_url=url, timeout=30) as c:
        def alone(name):
            return c.post("/explain", files={"file": (name, images[name], "image/png")}).json()

        expected = {name: alone(name) for name in images}  # one at a time
        with cf.ThreadPoolExecutor(4) as pool:  # as the page sends them
            together = dict(zip(images, pool.map(alone, images)))
    for name, answer in together.items():
        assert answer["filename"] == name
        assert [t["class"] for t in answer["top"]] == [t["class"] for t in expected[name]["top"]]
        assert [t["probability"] for t in answer["top"]] == \
            pytest.approx([t["probability"] for t in expected[name]["top"]], abs=1e-5)
        assert answer["overlay"].startswith("data:image/png;base64,")
