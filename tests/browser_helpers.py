"""Drawing in a real Chromium for the web page's tests: the launch flags, digit shapes as strokes, and mouse and
touch strokes (shared by tests/serving/test_browser.py and tests/web/test_static_app.py)."""

from __future__ import annotations

import contextlib
import itertools
import math
import shutil
from collections.abc import Iterator

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def circle(cx: float, cy: float, rx: float, ry: float, n: int = 40) -> list[tuple[float, float]]:
    """An ellipse as a closed stroke, clockwise from the top."""
    return [(cx + rx * math.sin(2 * math.pi * i / n), cy - ry * math.cos(2 * math.pi * i / n)) for i in range(n + 1)]


# Digit shapes as strokes in [0, 1] canvas coordinates.
SHAPES = {
    1: [[(0.52, 0.18), (0.50, 0.50), (0.48, 0.84)]],
    7: [[(0.28, 0.2), (0.72, 0.2), (0.62, 0.4), (0.50, 0.62), (0.42, 0.84)]],
    0: [circle(0.5, 0.5, 0.2, 0.32)],
}
DASH = [[(0.3, 0.5), (0.7, 0.5)]]
# "42" on the wide number-mode canvas, in fractions of its width and height: a 4 and a 2, well apart.
FORTY_TWO = [
    [(0.37, 0.14), (0.31, 0.62), (0.45, 0.62)],
    [(0.42, 0.32), (0.42, 0.88)],
    [(0.55, 0.30), (0.58, 0.17), (0.63, 0.14), (0.67, 0.22), (0.66, 0.40), (0.56, 0.84), (0.69, 0.84)],
]


def stroke_points(points, steps: int = 6) -> list[tuple[float, float]]:
    """A polyline with `steps` points per segment, as a hand's pointer events would come."""
    out = []
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        out += [(x0 + (x1 - x0) * t / steps, y0 + (y1 - y0) * t / steps) for t in range(steps)]
    return [*out, points[-1]]


def draw_mouse(page, strokes, selector: str = "#pad") -> None:
    """Draw strokes (canvas fractions) with the mouse."""
    box = page.locator(selector).bounding_box()
    for stroke in strokes:
        pts = stroke_points(stroke)
        page.mouse.move(box["x"] + pts[0][0] * box["width"], box["y"] + pts[0][1] * box["height"])
        page.mouse.down()
        for x, y in pts[1:]:
            page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"])
        page.mouse.up()


def draw_touch(page, cdp, strokes, selector: str = "#pad") -> None:
    """Draw strokes (canvas fractions) with touch events, through the DevTools protocol."""
    box = page.locator(selector).bounding_box()
    for stroke in strokes:
        pts = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke_points(stroke)]
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": pts[0][0], "y": pts[0][1]}]})
        for x, y in pts[1:]:
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


@contextlib.contextmanager
def headless_chromium() -> Iterator:
    """Debian's Chromium, headless, through Playwright (its own browser download does not work offline)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        yield browser
        browser.close()
