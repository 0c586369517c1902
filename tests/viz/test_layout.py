"""The report's layout in headless Chromium at a desktop and a phone width.

Every image must decode, fit the viewport, and nothing may push the page wider than the
window (a table or an enlarged figure scrolls in its own box). The checks are shown to fail on
a page with a broken image and an element wider than the window.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from neuralcollapse.viz.render import find_chromium, page_layout, render_screenshot

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"
)
WIDTHS = (1400, 420)


def layout_problems(layout: dict, expected_images: int) -> list[str]:
    """What is wrong with a page's layout (empty when nothing is)."""
    problems = []
    viewport = layout["viewport"]
    if len(layout["images"]) != expected_images:
        problems.append(f"{len(layout['images'])} images, expected {expected_images}")
    for index, image in enumerate(layout["images"]):
        if not image["complete"] or image["naturalWidth"] == 0 or image["naturalHeight"] == 0:
            problems.append(f"image {index} did not decode: {image}")
        if image["right"] > viewport + 0.5 or image["left"] < -0.5:
            problems.append(f"image {index} reaches past the viewport: {image}")
    if layout["scrollWidth"] > viewport:
        problems.append(f"page is {layout['scrollWidth']} px wide in a {viewport} px window")
    for element in layout["overflowing"]:
        problems.append(f"element past the viewport: {element}")
    return problems


def _ink(path: Path) -> float:
    """Fraction of dark pixels in a screenshot (0 for a blank page)."""
    pixels = imread(path)[..., :3]
    return float((pixels.mean(axis=-1) < 0.5).mean())


@pytest.mark.parametrize("width", WIDTHS)
def test_report_layout_fits_the_window_and_every_image_loads(built_report, width, tmp_path):
    figures = len(list((built_report["out"] / "figures").glob("*.png")))
    layout = page_layout(built_report["page"], width=width, height=900)
    assert layout["viewport"] == width
    assert layout_problems(layout, figures) == []
    for image in layout["images"]:
        # scaled to the page, never up (+ its 1 px border): at 420 px every figure is shrunk
        assert 0 < image["width"] <= min(image["naturalWidth"] + 2, layout["viewport"]) + 0.5
    shot = render_screenshot(built_report["page"], tmp_path / f"page_{width}.png", width=width)
    assert imread(shot).shape[1] == width
    assert _ink(shot) > 0.005


def test_an_enlarged_figure_scrolls_in_its_box_not_the_page(built_report, tmp_path):
    """Click-to-enlarge: with every zoom box ticked each image is at its natural size."""
    page = tmp_path / "zoomed.html"
    tick = "<script>document.querySelectorAll('.zoom').forEach((box) => { box.checked = true; });"
    page.write_text(built_report["page"].read_text().replace("</body>", tick + "</script></body>"))
    layout = page_layout(page, width=420, height=900)
    assert layout["images"]
    for image in layout["images"]:
        assert image["width"] == pytest.approx(image["naturalWidth"] + 2, abs=1)  # + border
    assert layout["scrollWidth"] <= 420
    assert layout["overflowing"] == []


def test_the_layout_check_fails_on_a_missing_image_and_a_too_wide_element(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta name="viewport" content="width=device-width">'
        "</head><body><p>text</p>"
        '<img src="data:image/png;base64,iVBORw0KGgo=" alt="truncated">'
        '<div id="wide" style="width:900px">too wide</div></body></html>'
    )
    layout = page_layout(page, width=420, height=600)
    problems = layout_problems(layout, expected_images=1)
    assert any("did not decode" in problem for problem in problems)
    assert any("'id': 'wide'" in problem for problem in problems)
    assert any("px wide in a 420 px window" in problem for problem in problems)


def test_narrow_screenshot_is_cropped_to_the_width_asked_for(built_report, tmp_path):
    shot = render_screenshot(built_report["page"], tmp_path / "narrow.png", width=420, height=700)
    pixels = imread(shot)
    assert pixels.shape[:2] == (700, 420)
    # the page's own content (the title) is in the picture, not only the white margin
    assert np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0).shape[0] > 20
