"""Render a report page with headless Chromium, to look at it as a reader would.

Used by the tests (every figure must decode to a non-empty image in a real browser) and handy
for checking a report on a machine without a display. Chromium is optional: only these helpers
need it, and they say how to get it when it is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

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
    _run_chromium(
        executable,
        [f"--screenshot={target}", f"--window-size={width},{height}", page.as_uri()],
        timeout,
    )
    if not target.is_file():
        raise RuntimeError(f"chromium did not write {target}")
    return target


def dump_dom(html_path: str | Path, *, chromium: str | None = None, timeout: float = 120.0) -> str:
    """The page's DOM after Chromium has loaded it and run its scripts (``--dump-dom``)."""
    page = Path(html_path).resolve()
    if not page.is_file():
        raise FileNotFoundError(f"{page} does not exist; build the report first")
    executable = _chromium_or_raise(chromium)
    return _run_chromium(executable, ["--dump-dom", page.as_uri()], timeout)
