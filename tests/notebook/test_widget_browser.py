"""The draw() widget's ES module in a real browser: JupyterLab (started here, on a free loopback port) runs a
small notebook, Chromium draws a 7 on the widget with the mouse, and the widget says 7; then writes 42 on the
number-mode widget shown under it, which reads 42."""

from __future__ import annotations

import itertools
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "notebook"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="no Chromium: `apt-get install chromium` (.ci/run does this)"
)
SEVEN = [(0.28, 0.2), (0.72, 0.2), (0.62, 0.4), (0.50, 0.62), (0.42, 0.84)]
# a 4 and a 2, well apart, in fractions of the wide number canvas
FORTY_TWO = [
    [(0.37, 0.14), (0.31, 0.62), (0.45, 0.62)],
    [(0.42, 0.32), (0.42, 0.88)],
    [(0.55, 0.30), (0.58, 0.17), (0.63, 0.14), (0.67, 0.22), (0.66, 0.40), (0.56, 0.84), (0.69, 0.84)],
]


@pytest.fixture(scope="module")
def lab(trained_run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("lab")
    cell = (
        f"from digitlab.notebook import draw\nwidget = draw({str(trained_run)!r})\n"
        f"number = draw({str(trained_run)!r}, mode='number')\ndisplay(widget, number)"
    )
    notebook = {
        "cells": [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": cell}],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (folder / "draw.ipynb").write_text(json.dumps(notebook))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(folder / ".config"), "JUPYTER_RUNTIME_DIR": str(folder / ".run")}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={folder}",
            "--LabApp.news_url=",
            "--allow-root",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2).read()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("JupyterLab did not start")
            time.sleep(0.3)
    yield url, token
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()


def test_draw_a_seven_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright

    url, token = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/lab/tree/draw.ipynb?token={token}", timeout=60000)
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60000)
        # the kernel is connected and idle when the status bar says so ("Python 3 (ipykernel) | Idle")
        page.wait_for_function("() => /\\| Idle/.test(document.body.innerText)", timeout=90000)
        pad = None
        for _attempt in range(3):  # a keypress that lands while JupyterLab is still settling is lost: run again
            page.click(".jp-Notebook .jp-Cell .jp-InputArea-editor")
            page.keyboard.press("Shift+Enter")  # run the cell: the widget appears in its output
            try:
                pad = page.wait_for_selector(".digitlab-draw:not(.number) canvas#pad", timeout=45000)
                break
            except Exception:
                page.screenshot(path=str(ARTIFACTS / "jupyterlab-retry.png"))
                page.keyboard.press("Escape")
        assert pad is not None, "the widget never appeared (see test-artifacts/notebook/jupyterlab-retry.png)"
        _draw(page, pad, [SEVEN])
        # the page runs in the widget's shadow root (Playwright's CSS selectors pierce it; querySelector does not)
        digit = "document.querySelector('.digitlab-draw:not(.number)').shadowRoot"
        page.wait_for_function(f"() => {digit}.querySelector('#label')?.textContent === '7'", timeout=60000)
        inked = "c => c.getContext('2d').getImageData(0, 0, 28, 28).data.some((v, i) => i % 4 === 0 && v > 0)"
        assert page.eval_on_selector(".digitlab-draw:not(.number) #seen", inked)  # the 28×28 the model saw
        assert "in this notebook's kernel" in page.inner_text(".digitlab-draw:not(.number) #model")
        page.screenshot(path=str(ARTIFACTS / "jupyterlab-draw-7.png"))
        page.locator(".digitlab-draw:not(.number)").screenshot(path=str(ARTIFACTS / "widget-7.png"))  # for the docs
        number = page.wait_for_selector(".digitlab-draw.number canvas#pad", timeout=30000)
        number.scroll_into_view_if_needed()
        box = number.bounding_box()
        assert box["width"] > 3 * box["height"]
        _draw(page, number, FORTY_TWO)
        try:
            page.wait_for_function(
                "() => document.querySelector('.digitlab-draw.number').shadowRoot"
                ".querySelector('[data-testid=prediction]')?.textContent === '42'",
                timeout=60000,
            )
        finally:
            page.locator(".digitlab-draw.number").screenshot(path=str(ARTIFACTS / "jupyterlab-number-42.png"))
        assert page.eval_on_selector_all(".digitlab-draw.number #boxes .box", "els => els.length") == 2
        assert page.eval_on_selector_all(".digitlab-draw.number [data-testid=reading-digits] img", "e => e.length") == 2
        browser.close()


def _draw(page, pad, strokes):
    box = pad.bounding_box()
    for stroke in strokes:
        page.mouse.move(box["x"] + stroke[0][0] * box["width"], box["y"] + stroke[0][1] * box["height"])
        page.mouse.down()
        for (x0, y0), (x1, y1) in itertools.pairwise(stroke):
            for t in range(1, 7):  # small steps, as a hand moves
                x, y = x0 + (x1 - x0) * t / 6, y0 + (y1 - y0) * t / 6
                page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"])
        page.mouse.up()
