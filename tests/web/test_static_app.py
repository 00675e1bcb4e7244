"""The static web export (`digitlab export RUN --format web`) in a real headless Chromium: served by
`python -m http.server` on a loopback port with no digitlab process running, drawn on with the mouse and with touch.

Screenshots go to test-artifacts/web/.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from browser_helpers import CHROMIUM, DASH, SHAPES, draw_mouse, draw_touch, headless_chromium
from digitlab.errors import FetchError

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="no Chromium: `apt-get install chromium` (.ci/run does this)"
    ),
]


@pytest.fixture(scope="module")
def site(trained_run, tmp_path_factory):
    """The exported folder of a copy of the session's trained run (ONNX Runtime Web cached across test sessions)."""
    from digitlab.inference.web_export import export_web

    cache = tmp_path_factory.getbasetemp().parent / "digitlab-npm-cache"  # outlives one session, unlike tmp_path
    folder = tmp_path_factory.mktemp("web-export")
    run = folder / "run"  # a copy without its refusal, whichever test fitted it: the export fits it on first use
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("refusal.json", "export", "explain", "feedback"))
    out = folder / "site"
    try:
        export_web(run, out, log=lambda _: None, cache_dir=cache)
    except FetchError as e:
        pytest.skip(f"ONNX Runtime Web is not available here: {e}")
    return out


@pytest.fixture(scope="module")
def url(site):
    """`python -m http.server` serving the folder on a free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(site)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    with headless_chromium() as b:
        yield b


def _open(page, url: str) -> list[str]:
    """Load the page, wait for the model, and return the list every request URL is appended to."""
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(url)
    page.wait_for_function("document.body.dataset.ready", timeout=60000)
    assert page.evaluate("document.body.dataset.ready") == "true", page.text_content("#setup-error")
    return requests


def _wait_label(page, expected: str) -> None:
    page.wait_for_function(
        "e => document.querySelector('[data-testid=prediction]').textContent === e", arg=expected, timeout=15000
    )


def _check_digit(page, digit: int) -> None:
    _wait_label(page, str(digit))
    widths = page.eval_on_selector_all(
        "[data-testid=probabilities] .fill", "els => els.map(e => parseFloat(e.style.width))"
    )
    assert len(widths) == 10 and max(widths) == widths[digit] and widths[digit] > 50
    ink = page.evaluate(
        "() => { const c = document.querySelector('[data-testid=processed]');"
        " const d = c.getContext('2d').getImageData(0, 0, 28, 28).data;"
        " let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i]; return s; }"
    )
    assert ink > 28 * 255  # the 28×28 shows a digit, white on black


def test_the_export_carries_the_refusal_with_features(site, url, browser):
    """The trained cnn answers features: web.json holds the seven-input refusal, its bank and the two Mahalanobis
    distances' whitening and centres beside it (the penultimate layer's and the last convolution's, 64 channels,
    after it), and the six-feature one inside; the page fetches every file."""
    refusal = json.loads((site / "model" / "web.json").read_text())["refusal"]
    assert refusal["features"][-1] == "feature_knn" and len(refusal["plain"]["coef"]) == 6
    bank, distance, conv = refusal["feature_bank"], refusal["mahalanobis"], refusal["conv_mahalanobis"]
    assert (site / "model" / bank["file"]).stat().st_size == bank["rows"] * bank["width"] * 4
    for part in (distance, conv):
        size = (part["width"] + part["classes"]) * part["width"] * 4
        assert (site / "model" / part["file"]).stat().st_size == size
    assert distance["width"] == bank["width"] == conv["start"] and conv["width"] == 64
    page = browser.new_page()
    requests = _open(page, url)
    assert all(any(r.endswith("/model/" + f["file"]) for r in requests) for f in (bank, distance, conv))
    page.close()


def test_draw_digits_with_the_mouse(url, browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    requests = _open(page, url)
    assert "runs in this browser" in page.text_content("#model")
    for digit, strokes in SHAPES.items():
        page.click("#clear")
        draw_mouse(page, strokes)
        _check_digit(page, digit)
        page.screenshot(path=str(ARTIFACTS / f"mouse-{digit}.png"))
    assert requests and all(r.startswith(url) or r.startswith("data:") for r in requests), requests  # no CDN
    page.close()


def test_the_honest_answers(url, browser):
    """A dot is "no digit", a dash "not a digit" (the refusal score, in the browser), a 4 and a 2 "several digits"."""
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    _open(page, url)
    cases = [
        ([[(0.5, 0.5), (0.505, 0.5)]], "blank", "No digit found"),
        (DASH, "not_a_digit", "Not a digit"),
        ([[(0.2, 0.3), (0.2, 0.7)], [(0.75, 0.3), (0.75, 0.7)]], "several_digits", "Several digits"),
    ]
    for strokes, verdict, status in cases:
        page.click("#clear")
        draw_mouse(page, strokes)
        page.wait_for_function(
            "v => document.querySelector('[data-testid=verdict]').textContent === v", arg=verdict, timeout=15000
        )
        assert page.text_content("[data-testid=prediction]") == ""
        assert page.text_content("#status").startswith(status)
    page.screenshot(path=str(ARTIFACTS / "several-digits.png"))
    page.close()


def test_phone_touch_with_the_answer_in_view(url, browser):
    """At 390×844 a digit drawn with touch gets its answer, confidence and 28×28 on screen without scrolling."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    page = context.new_page()
    _open(page, url)
    cdp = context.new_cdp_session(page)
    draw_touch(page, cdp, SHAPES[7])
    _check_digit(page, 7)
    assert page.evaluate("window.scrollY") == 0
    for selector in ("#pad", "[data-testid=prediction]", "[data-testid=confidence]", "[data-testid=processed]"):
        box = page.locator(selector).bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= 844 and box["x"] + box["width"] <= 390, selector
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    page.screenshot(path=str(ARTIFACTS / "phone-touch-7.png"))
    context.close()


def test_wasm_served_as_html_is_named(url, browser):
    """A host that answers the .wasm with an HTML page (a single-page-app fallback): the page says what is wrong."""
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.route(
        "**/*.wasm", lambda route: route.fulfill(status=200, content_type="text/html", body="<!doctype html><p>hi")
    )
    page.goto(url)
    page.wait_for_function("document.body.dataset.ready === 'error'", timeout=30000)
    message = page.text_content("#setup-error")
    assert "HTML page" in message and "ort-wasm-simd-threaded.wasm" in message and "00 61 73 6d" in message
    assert page.is_visible("#setup-error")
    page.screenshot(path=str(ARTIFACTS / "wasm-as-html.png"))
    page.close()


def test_number_mode_reads_42(url, browser):
    """Number mode in the browser: "42" on the wide canvas reads as 42 with a box over each digit; on the square
    pad the same digits are "several digits", and "Read as a number" reads them."""
    from browser_helpers import FORTY_TWO

    page = browser.new_page(viewport={"width": 1100, "height": 800})
    _open(page, url)
    square = [[(0.1 + 0.35 * (x - 0.31) / 0.14, y) for x, y in s] for s in FORTY_TWO[:2]]  # the 4, left half
    square += [[(0.55 + 0.35 * (x - 0.55) / 0.14, y) for x, y in FORTY_TWO[2]]]  # the 2, right half
    draw_mouse(page, square)
    page.wait_for_function("document.querySelector('[data-testid=verdict]').textContent === 'several_digits'")
    assert page.text_content("#status").startswith("Several digits: 2 separate marks, reads as '42'")
    page.click("#as-number")
    _wait_label(page, "42")
    page.click("#clear")
    draw_mouse(page, FORTY_TWO)
    _wait_label(page, "42")
    assert page.eval_on_selector_all("[data-testid=reading-digits] b", "els => els.map(e => e.textContent)") == [
        "4",
        "2",
    ]
    assert page.eval_on_selector_all(".boxes .box", "els => els.length") == 2
    page.screenshot(path=str(ARTIFACTS / "number-42.png"))
    page.close()
