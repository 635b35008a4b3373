"""report.html is one self-contained file: every picture embedded, nothing fetched."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser

from PIL import Image

from cnnkit.report import render_report, write_report
from cnnkit.report.html import PLOTS


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _parse(text):
    p = _Tags()
    p.feed(text)
    return p.tags


def test_report_embeds_every_picture(report_run):
    text = (report_run / "report.html").read_text()
    imgs = [a for t, a in _parse(text) if t == "img"]
    assert sorted(a["data-plot"] for a in imgs) == sorted(f.rsplit(".", 1)[0] for f, _ in PLOTS.values())
    for a in imgs:
        assert a["src"].startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(a["src"].split(",", 1)[1]))) as img:
            assert img.format == "PNG" and img.width > 100


def test_report_fetches_nothing(report_run):
    tags = _parse((report_run / "report.html").read_text())
    assert not [t for t, a in tags if t in ("script", "link", "iframe")]
    for _, attrs in tags:
        for key in ("src", "href"):
            assert not re.match(r"(https?:)?//", attrs.get(key) or ""), attrs


def test_report_content(report_run):
    text = (report_run / "report.html").read_text()
    metrics = json.loads((report_run / "metrics.json").read_text())
    assert f"{metrics['test_accuracy']:.4f}" in text
    assert "Total params: 54,410" in text                      # the model summary
    for section in ("Training curves", "Metrics per class", "Confusion matrix",
                    "Sample predictions", "Top losses", "data wait vs compute"):
        assert section.lower() in text.lower(), section
    assert "computing on batches" in text and "waiting for them" in text
    assert "macro average" in text and "cnnkit train" in text


def test_report_survives_missing_pictures(report_run, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(report_run, copy)
    (copy / "plots" / "top_losses.png").unlink()
    page = render_report(copy)
    assert "top_losses.png is missing" in page
    assert write_report(copy).is_file()
