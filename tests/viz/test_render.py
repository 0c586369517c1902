"""The report as a browser draws it: every figure decodes to a non-empty image."""

import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from neuralcollapse.viz.render import dump_dom, find_chromium, render_screenshot

CHROMIUM = find_chromium()

# appended to a copy of the page: after load, record each image's decoded size in the DOM
_PROBE = """<script>
window.addEventListener('load', () => {
  const sizes = Array.from(document.images).map(
    (img) => [img.complete, img.naturalWidth, img.naturalHeight]);
  document.body.setAttribute('data-image-sizes', JSON.stringify(sizes));
});
</script>"""


def browser_image_sizes(page: Path) -> list[list]:
    """``[complete, naturalWidth, naturalHeight]`` of every <img> as Chromium decodes it."""
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text().replace("</body>", _PROBE + "</body>"))
    dom = dump_dom(probe)
    start = dom.index('data-image-sizes="') + len('data-image-sizes="')
    end = dom.index('"', start)
    return json.loads(dom[start:end].replace("&quot;", '"'))


def assert_report_renders(page: Path, screenshot: Path, expected_figures: int) -> None:
    sizes = browser_image_sizes(page)
    assert len(sizes) == expected_figures
    for complete, width, height in sizes:
        assert complete and width > 100 and height > 100
    render_screenshot(page, screenshot, width=1400, height=3000)
    pixels = imread(screenshot)[..., :3]
    # a page with figures is not blank: many distinct colours, not only the white background
    assert pixels.shape[:2] == (3000, 1400)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50
    assert (pixels.mean(axis=-1) < 0.5).mean() > 0.005


# the demo's test (tests/viz/test_demo.py) renders the full demo report with these helpers


def test_render_of_missing_page_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="build the report first"):
        render_screenshot(tmp_path / "nope.html", tmp_path / "x.png")


def test_render_with_missing_browser_says_how_to_install_it(tmp_path, monkeypatch):
    from neuralcollapse.viz import render

    page = tmp_path / "page.html"
    page.write_text("<html></html>")
    monkeypatch.setattr(render, "find_chromium", lambda: None)
    with pytest.raises(FileNotFoundError, match="apt-get install chromium"):
        render.render_screenshot(page, tmp_path / "x.png")
