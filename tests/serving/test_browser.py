"""The draw page in a real headless Chromium (Debian's), driven by Playwright with real mouse and touch strokes.

Screenshots of each flow go to test-artifacts/browser/.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from browser_helpers import CHROMIUM, DASH, FORTY_TWO, SHAPES, headless_chromium
from browser_helpers import draw_mouse as _draw_mouse
from browser_helpers import draw_touch as _draw_touch

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="no Chromium: `apt-get install chromium` (.ci/run does this)"
)


@pytest.fixture(scope="module")
def server(trained_run, tmp_path_factory):
    import uvicorn

    from digitlab.serving.app import ServeConfig, create_app

    feedback = tmp_path_factory.mktemp("browser-feedback")
    app = create_app(ServeConfig(model=str(trained_run), feedback_dir=str(feedback)))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", feedback
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    with headless_chromium() as b:
        yield b


def _wait_label(page, expected: str):
    page.wait_for_function("e => document.getElementById('label').textContent === e", arg=expected, timeout=15000)


def _wait_verdict(page, verdict: str):
    page.wait_for_function(
        "v => document.querySelector('[data-testid=verdict]').textContent === v", arg=verdict, timeout=15000
    )


def _wait_state(page, state: str):
    """No answer: the prediction is empty and the page shows a placeholder glyph (data-state says why)."""
    page.wait_for_function("s => document.getElementById('label').dataset.state === s", arg=state, timeout=15000)
    assert page.text_content("[data-testid=prediction]") == ""


def _check_result(page, label: int):
    _wait_label(page, str(label))
    widths = page.eval_on_selector_all("#bars .fill", "els => els.map(e => parseFloat(e.style.width))")
    assert len(widths) == 10 and max(widths) == widths[label] and widths[label] > 50
    seen = page.evaluate(
        "() => { const d = document.getElementById('seen').getContext('2d').getImageData(0, 0, 28, 28).data;"
        " let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i]; return s; }"
    )
    assert seen > 28 * 255  # the 28×28 preview shows a digit (white ink on black)


def test_draw_digits_with_the_mouse(server, browser):
    url, _ = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(url)
    page.wait_for_function("document.getElementById('model').textContent.startsWith('model cnn')")
    for digit, strokes in SHAPES.items():
        page.click("#clear")
        _draw_mouse(page, strokes)
        _check_result(page, digit)
        page.screenshot(path=str(ARTIFACTS / f"mouse-{digit}.png"))
    page.close()


def test_empty_canvas_and_a_dot_show_no_digit(server, browser):
    url, _ = server
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(url)
    assert "No digit" in page.text_content("#status")
    _draw_mouse(page, SHAPES[7])
    _wait_label(page, "7")
    page.click("#clear")
    _wait_state(page, "empty")
    assert "No digit" in page.text_content("#status")
    _draw_mouse(page, [[(0.5, 0.5), (0.505, 0.5)]])  # a dot: not a digit
    _wait_state(page, "blank")
    assert "No digit found" in page.text_content("#status")
    assert page.text_content("[data-testid=verdict]") == "blank"
    page.screenshot(path=str(ARTIFACTS / "no-digit.png"))
    page.close()


def test_a_correction_is_stored(server, browser):
    url, feedback = server
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(url)
    _draw_mouse(page, SHAPES[1])
    _wait_label(page, "1")
    page.click("button[aria-label='It was a 4']")
    page.wait_for_function("document.getElementById('thanks').textContent.includes('Saved as a 4')")
    record = json.loads((feedback / "index.jsonl").read_text().splitlines()[-1])
    assert record["label"] == 4 and record["predicted"] == 1 and (feedback / record["file"]).is_file()
    page.screenshot(path=str(ARTIFACTS / "correction.png"))
    page.close()


def test_phone_viewport_with_touch(server, browser):
    url, _ = server
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    page = context.new_page()
    page.goto(url)
    cdp = context.new_cdp_session(page)
    for digit in (7, 0):
        page.click("#clear")
        _draw_touch(page, cdp, SHAPES[digit])
        _check_result(page, digit)
        for selector in ("[data-testid=prediction]", "[data-testid=processed]"):  # the compact answer, in view
            box = page.locator(selector).bounding_box()
            assert box["y"] >= 0 and box["y"] + box["height"] <= 844, selector
        page.screenshot(path=str(ARTIFACTS / f"phone-touch-{digit}.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    context.close()


def _overlay_pixels(page):
    return page.evaluate(
        "() => Array.from(document.getElementById('overlay').getContext('2d').getImageData(0, 0, 28, 28).data)"
    )


def test_inside_the_network_panel_follows_the_drawing(server, browser):
    """Draw a 7: layer maps and the attribution overlay appear; another "why not" class changes the map."""
    url, _ = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    page.goto(url)
    _draw_mouse(page, SHAPES[7])
    _wait_label(page, "7")
    # the first explanation loads TensorFlow and builds the training digits' map: allow for that
    page.wait_for_selector("#layers figure img", timeout=90000)
    page.wait_for_function("document.getElementById('why').textContent.includes('toward 7')", timeout=30000)
    captions = page.eval_on_selector_all("#layers figcaption", "els => els.map(e => e.textContent)")
    assert any("convolution" in c for c in captions) and any("logits" in c for c in captions), captions
    assert page.eval_on_selector_all("#neighbours img", "els => els.length") == 5
    before = _overlay_pixels(page)
    assert len({tuple(before[i : i + 3]) for i in range(0, len(before), 4)}) > 20  # a coloured map, not blank
    page.screenshot(path=str(ARTIFACTS / "inside-7.png"), full_page=True)
    page.select_option("#contrast", "1")
    page.wait_for_function("document.getElementById('why').textContent.includes('rather than 1')", timeout=30000)
    page.wait_for_timeout(300)
    assert _overlay_pixels(page) != before
    page.select_option("#method", "gradcam")
    page.wait_for_function("document.getElementById('why').textContent.startsWith('Grad-CAM')", timeout=30000)
    page.screenshot(path=str(ARTIFACTS / "inside-7-gradcam-vs-1.png"), full_page=True)
    page.close()


def test_a_dash_is_not_a_digit(server, browser):
    """Digit mode answers honestly: a dash gets the verdict and the reason, and no digit."""
    url, _ = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(url)
    _draw_mouse(page, DASH)
    _wait_verdict(page, "not_a_digit")  # answers to the half-drawn stroke may come first
    assert page.text_content("[data-testid=prediction]") == ""
    assert page.text_content("#status").startswith("Not a digit")
    assert page.eval_on_selector("#bars", "e => e.classList.contains('muted')")  # shown, but not as an answer
    page.wait_for_timeout(300)  # the bars' transition
    page.screenshot(path=str(ARTIFACTS / "dash.png"))
    page.close()


def test_write_42_in_number_mode(server, browser):
    """Number mode: the switch is keyboard-usable, a 4 and a 2 read as "42", each digit boxed on the canvas."""
    url, _ = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(url)
    page.focus("input[name=mode][value=digit]")
    page.keyboard.press("ArrowRight")  # radios: arrows choose
    page.wait_for_function("document.body.classList.contains('mode-number')")
    box = page.locator("#pad").bounding_box()
    assert box["width"] > 3 * box["height"]
    _draw_mouse(page, FORTY_TWO)
    _wait_label(page, "42")
    assert page.text_content("[data-testid=verdict]") == "number"
    assert page.eval_on_selector_all("[data-testid=reading-digits] img", "els => els.length") == 2
    captions = page.eval_on_selector_all("[data-testid=reading-digits] b", "els => els.map(e => e.textContent)")
    assert captions == ["4", "2"]
    boxes = page.eval_on_selector_all(".boxes .box", "els => els.map(e => e.getBoundingClientRect().toJSON())")
    assert len(boxes) == 2
    for b, (x0, x1) in zip(boxes, [(0.31, 0.45), (0.55, 0.69)], strict=True):  # each box over its digit's ink
        mid = (b["left"] + b["right"]) / 2
        assert box["x"] + x0 * box["width"] - 15 < mid < box["x"] + x1 * box["width"] + 15
        assert box["y"] < b["top"] < b["bottom"] <= box["y"] + box["height"]
    page.screenshot(path=str(ARTIFACTS / "number-42.png"))
    page.click("#clear")
    _wait_state(page, "empty")
    assert page.eval_on_selector_all(".boxes .box", "els => els.length") == 0
    page.close()


def test_several_digits_on_a_phone_then_read_as_a_number(server, browser):
    """A 4 and a 2 on the square pad are "several digits"; "Read as a number" keeps the drawing and reads 42 on
    the wide pad, which fits the phone's width."""
    url, _ = server
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    page = context.new_page()
    page.goto(url)
    cdp = context.new_cdp_session(page)
    square = [[(0.1 + 0.35 * (x - 0.31) / 0.14, y) for x, y in s] for s in FORTY_TWO[:2]]  # the 4, left half
    square += [[(0.55 + 0.35 * (x - 0.55) / 0.14, y) for x, y in FORTY_TWO[2]]]  # the 2, right half
    _draw_touch(page, cdp, square)
    _wait_verdict(page, "several_digits")
    assert page.text_content("[data-testid=prediction]") == ""
    assert page.text_content("#status").startswith("Several digits")
    page.screenshot(path=str(ARTIFACTS / "phone-several-digits.png"), full_page=True)
    page.click("#as-number")
    _wait_label(page, "42")
    box = page.locator("#pad").bounding_box()
    assert box["width"] > 3 * box["height"] and box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    page.screenshot(path=str(ARTIFACTS / "phone-number-42.png"), full_page=True)
    context.close()
