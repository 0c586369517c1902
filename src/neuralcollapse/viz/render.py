"""Render a report page with headless Chromium, to look at it as a reader would.

Used by the tests (every figure must decode to a non-empty image in a real browser) and handy
for checking a report on a machine without a display. Chromium is optional: only these helpers
need it, and they say how to get it when it is missing.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: headless Chromium lays pages out at least this wide whatever --window-size says, so a
#: narrower view (a phone, e.g. 420 px) is rendered inside an iframe of the width asked for
MIN_WINDOW_WIDTH = 500

# flags that keep a headless run quiet, offline and free of first-run work
_HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable on PATH (or /usr/bin/chromium), else ``None``."""
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    fallback = Path("/usr/bin/chromium")
    return str(fallback) if fallback.exists() else None


def _chromium_or_raise(chromium: str | None) -> str:
    executable = chromium or find_chromium()
    if executable is None:
        raise FileNotFoundError(
            "no Chromium found; install it (Debian/Ubuntu: `apt-get install chromium`) "
            "or pass chromium='/path/to/chrome'"
        )
    return executable


def _run_chromium(executable: str, arguments: list[str], timeout: float) -> str:
    with tempfile.TemporaryDirectory(prefix="nc-chromium-") as profile:
        command = [executable, *_HEADLESS_FLAGS, f"--user-data-dir={profile}", *arguments]
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
    if completed.returncode != 0:
        raise RuntimeError(
            f"chromium exited with status {completed.returncode}: {completed.stderr[-2000:]}"
        )
    return completed.stdout


def render_screenshot(
    html_path: str | Path,
    png_path: str | Path,
    *,
    width: int = 1400,
    height: int = 4000,
    chromium: str | None = None,
    timeout: float = 120.0,
) -> Path:
    """Screenshot ``html_path`` as Chromium draws it in a ``width x height`` window.

    Returns
    -------
    Path of the PNG written.
    """
    page = Path(html_path).resolve()
    if not page.is_file():
        raise FileNotFoundError(f"{page} does not exist; build the report first")
    if width < 100 or height < 100:
        raise ValueError(f"window size must be at least 100 x 100; got {width} x {height}")
    executable = _chromium_or_raise(chromium)
    target = Path(png_path).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    if width >= MIN_WINDOW_WIDTH:
        _run_chromium(
            executable,
            [f"--screenshot={target}", f"--window-size={width},{height}", page.as_uri()],
            timeout,
        )
        if not target.is_file():
            raise RuntimeError(f"chromium did not write {target}")
        return target
    # narrower than Chromium's smallest window: the page in an iframe of that width, the
    # screenshot cropped to it
    with tempfile.TemporaryDirectory(prefix="nc-narrow-") as folder:
        harness = _iframe_harness(Path(folder), page.as_uri(), width, height)
        _run_chromium(
            executable,
            [
                f"--screenshot={target}",
                f"--window-size={MIN_WINDOW_WIDTH},{height}",
                harness.as_uri(),
            ],
            timeout,
        )
    if not target.is_file():
        raise RuntimeError(f"chromium did not write {target}")
    from matplotlib.image import imread, imsave

    imsave(target, imread(target)[:, :width])
    return target


def _iframe_harness(folder: Path, page_uri: str, width: int, height: int) -> Path:
    """A page showing ``page_uri`` in a borderless ``width x height`` iframe at its top left.

    Whatever the framed page posts to its parent (``parent.postMessage``) is stored in the
    harness's ``data-message`` attribute, where ``--dump-dom`` can read it.
    """
    harness = folder / "harness.html"
    harness.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
        '<body style="margin:0">'
        f'<iframe src="{html.escape(page_uri, quote=True)}" '
        f'style="border:0;display:block;width:{width}px;height:{height}px"></iframe>'
        "<script>window.addEventListener('message', (event) => "
        "{ document.body.setAttribute('data-message', event.data); });</script>"
        "</body></html>"
    )
    return harness


# runs in the measured page after load: the viewport, the page's scroll width, each image as
# decoded and as laid out, and every element that reaches past the viewport's edges (inside a
# box that scrolls sideways, ".scroll-x", an element may be wider: that box scrolls, the page
# does not). Posted to the harness, which stores it for --dump-dom.
_LAYOUT_PROBE = """<script>
window.addEventListener('load', () => {
  const viewport = document.documentElement.clientWidth;
  const images = Array.from(document.images).map((img) => {
    const box = img.getBoundingClientRect();
    return {complete: img.complete, naturalWidth: img.naturalWidth,
            naturalHeight: img.naturalHeight, width: box.width, left: box.left,
            right: box.right};
  });
  const overflowing = [];
  for (const element of document.body.querySelectorAll('*')) {
    const box = element.getBoundingClientRect();
    const scroller = element.parentElement && element.parentElement.closest('.scroll-x');
    if (scroller || box.width === 0) continue;
    if (box.right > viewport + 0.5 || box.left < -0.5) {
      overflowing.push({tag: element.tagName.toLowerCase(), id: element.id,
                        className: String(element.className), left: box.left,
                        right: box.right});
    }
  }
  parent.postMessage(JSON.stringify({
    viewport: viewport, innerWidth: window.innerWidth,
    scrollWidth: document.documentElement.scrollWidth, images: images,
    overflowing: overflowing}), '*');
});
</script>"""


def page_layout(
    html_path: str | Path,
    *,
    width: int = 1400,
    height: int = 900,
    chromium: str | None = None,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """How Chromium lays out ``html_path`` in a viewport ``width`` CSS pixels wide.

    The page is copied with a probe script appended (the original is not touched) and shown in
    an iframe of that width, so narrow phone-sized views work too (see
    :data:`MIN_WINDOW_WIDTH`).

    Returns
    -------
    dict with ``viewport`` (the layout width), ``innerWidth``, ``scrollWidth`` (wider than the
    viewport: the page scrolls sideways), ``images`` (per ``<img>``: ``complete``,
    ``naturalWidth``, ``naturalHeight``, laid-out ``width``, ``left``, ``right``) and
    ``overflowing`` (elements reaching past the viewport, outside sideways-scrolling boxes).
    """
    page = Path(html_path).resolve()
    if not page.is_file():
        raise FileNotFoundError(f"{page} does not exist; build the report first")
    if width < 100 or height < 100:
        raise ValueError(f"viewport must be at least 100 x 100; got {width} x {height}")
    executable = _chromium_or_raise(chromium)
    with tempfile.TemporaryDirectory(prefix="nc-layout-") as folder:
        probe = Path(folder) / page.name
        text = page.read_text(encoding="utf-8")
        probe.write_text(
            text.replace("</body>", _LAYOUT_PROBE + "</body>")
            if "</body>" in text
            else text + _LAYOUT_PROBE,
            encoding="utf-8",
        )
        harness = _iframe_harness(Path(folder), probe.as_uri(), width, height)
        dom = _run_chromium(
            executable,
            [
                f"--window-size={max(width, MIN_WINDOW_WIDTH)},{height}",
                # wait for the framed page's message before the DOM is dumped
                "--virtual-time-budget=20000",
                "--dump-dom",
                harness.as_uri(),
            ],
            timeout,
        )
    marker = 'data-message="'
    start = dom.find(marker)
    if start < 0:
        raise RuntimeError(
            "the page did not report its layout (did it load? is it an HTML page?); "
            f"chromium's DOM began: {dom[:300]!r}"
        )
    start += len(marker)
    end = dom.index('"', start)
    return json.loads(html.unescape(dom[start:end]))


def dump_dom(html_path: str | Path, *, chromium: str | None = None, timeout: float = 120.0) -> str:
    """The page's DOM after Chromium has loaded it and run its scripts (``--dump-dom``)."""
    page = Path(html_path).resolve()
    if not page.is_file():
        raise FileNotFoundError(f"{page} does not exist; build the report first")
    executable = _chromium_or_raise(chromium)
    return _run_chromium(executable, ["--dump-dom", page.as_uri()], timeout)
