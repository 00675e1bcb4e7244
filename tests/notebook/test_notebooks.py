"""The tutorials run top to bottom (quick settings, as CI runs them), are committed without outputs, and the
draw() widget answers like the server from Python."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 300


def test_there_are_four_tutorials():
    assert [p.name[:3] for p in NOTEBOOKS] == ["01_", "02_", "03_", "04_"]
    assert {p.stem for p in NOTEBOOKS} >= RUN_TWICE


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    """Outputs are stripped before committing (`make notebook-strip`), so diffs show only what changed."""
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, path.name


# Run twice: the tutorials whose second run reuses more than `train_and_evaluate`'s finished runs (01: a transfer
# from its own saved cnn; 04: the first run's evaluation and the widget's refusal). 02 and 03 reuse only finished
# runs, the path 01 and 04 already take a second time, so they run once (CI time: about a minute less).
RUN_TWICE = {"01_how_a_model_classifies", "04_end_to_end"}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, tmp_path, mnist_dir, monkeypatch):
    """Run all (and for `RUN_TWICE`, Run all again in the same folder, a fresh kernel each time: the second run
    finds what the first made and reuses it, as a reader who runs a tutorial twice would)."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("DIGITLAB_QUICK", "1")  # the kernel inherits it: small, fast settings
    monkeypatch.setenv("DIGITLAB_DATA", str(mnist_dir))
    for attempt in ("first", "second") if path.stem in RUN_TWICE else ("first",):
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        NotebookClient(
            nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert not errors, (attempt, errors)
        print(f"{path.name} ({attempt} run): {time.perf_counter() - start:.0f} s")
        assert (tmp_path / "runs").is_dir()  # it trained into its own folder, not the repository's


@pytest.fixture(scope="module")
def widget(trained_run):
    from digitlab.notebook import draw

    return draw(trained_run)


def test_draw_fits_a_missing_refusal_when_made_not_on_the_first_stroke(trained_run, tmp_path, capsys):
    """A run without its refusal (an older run) gets it fitted while the cell runs, said in one line."""
    import shutil

    from digitlab.inference.refusal import BANK_FILE, REFUSAL_FILE
    from digitlab.notebook import draw

    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns(REFUSAL_FILE, BANK_FILE, "report", "explain"))
    draw(run, runtime="keras")
    assert "first use" in capsys.readouterr().out and (run / REFUSAL_FILE).is_file()


def _url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def test_widget_answers_canvases_of_every_style(widget, mnist):
    from digitlab.data.synthetic import STYLES, browser_png, render

    right, verdicts = 0, []
    for i, style in enumerate(STYLES * 3):
        widget.image = _url(browser_png(render(mnist.x_test[i], style, np.random.default_rng(i))))
        verdicts.append((style, widget.verdict))
        assert widget.error == "" and (widget.label is not None) == (widget.verdict == "digit")
        assert len(widget.probabilities) == 10 and abs(sum(widget.probabilities) - 1) < 1e-4
        assert widget.top_k[0]["label"] == int(np.argmax(widget.probabilities))
        assert widget.processed.startswith("data:image/png;base64,")
        right += widget.label == mnist.y_test[i]
    assert right >= 0.9 * 3 * len(STYLES), verdicts


def test_widget_blank_and_bad_input_never_raise(widget, mnist):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA", (280, 280), (255, 255, 255, 255)).save(buf, format="PNG")
    widget.image = _url(buf.getvalue())
    assert widget.label is None and widget.error == "" and widget.reason.startswith("blank")
    for bad, message in [
        ("data:image/png;base64,@@@", "base64"),
        ("data:image/png;base64,AAAA", "not a recognised image"),
        ("https://example.org/seven.png", "data:image"),
    ]:
        widget.image = bad
        assert widget.label is None and message in widget.error and widget.probabilities == []
    widget.image = ""
    assert widget.label is None and widget.error == "" and widget.processed == ""


def test_widget_matches_the_server(widget, trained_run, mnist):
    """Same preprocessing, same model call: the widget's probabilities equal /api/predict's."""
    from fastapi.testclient import TestClient

    from digitlab.data.synthetic import browser_png, render
    from digitlab.serving.app import ServeConfig, create_app

    url = _url(browser_png(render(mnist.x_test[5], "photo", np.random.default_rng(5))))
    widget.image = url
    with TestClient(create_app(ServeConfig(model=str(trained_run)))) as client:
        body = client.post("/api/predict", json={"image": url}).json()
    assert body["label"] == widget.label and body["processed"] == widget.processed
    assert body["verdict"] == widget.verdict and body["reason"] == widget.reason
    np.testing.assert_allclose(body["probabilities"], widget.probabilities, atol=1e-6)


def test_widget_says_why_there_is_no_digit(widget, mnist):
    """Digit mode gives the verdict and reason like /api/predict: two digits side by side are not one digit."""
    import io

    from digitlab.data.synthetic import number_image

    image, _ = number_image([mnist.x_test[i] for i in (0, 1)], np.random.default_rng(0), gap="wide")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    widget.image = _url(buf.getvalue())
    assert widget.verdict == "several_digits" and widget.label is None and widget.reason.startswith("several")
    assert len(widget.probabilities) == 10  # the model ran: its probabilities are still given


def test_widget_number_mode_reads_like_the_server(trained_run, mnist):
    import io

    from fastapi.testclient import TestClient

    from digitlab.data.synthetic import number_image
    from digitlab.errors import ConfigError
    from digitlab.notebook import draw
    from digitlab.serving.app import ServeConfig, create_app

    with pytest.raises(ConfigError, match="digit, number"):
        draw(trained_run, mode="numbers")
    widget = draw(trained_run, mode="number")
    digits = [mnist.x_test[i] for i in (1, 2, 3)]  # 2, 1, 0
    image, boxes = number_image(digits, np.random.default_rng(1), gap="apart", style="black-on-white")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    widget.image = url = _url(buf.getvalue())
    assert widget.error == "" and widget.verdict == "number"
    assert widget.text == "".join(str(mnist.y_test[i]) for i in (1, 2, 3))
    assert [d["box"][0] < b[2] and b[0] < d["box"][2] for d, b in zip(widget.digits, boxes, strict=True)] == [True] * 3
    assert all(d["processed"].startswith("data:image/png;base64,") for d in widget.digits)
    with TestClient(create_app(ServeConfig(model=str(trained_run)))) as client:
        body = client.post("/api/read", json={"image": url}).json()
    assert body["text"] == widget.text and [d["box"] for d in body["digits"]] == [d["box"] for d in widget.digits]
    widget.image = ""
    assert widget.text == "" and widget.digits == [] and widget.verdict == ""


def test_kernel_env_is_not_left_quick():
    assert os.environ.get("DIGITLAB_QUICK") is None


def test_the_widget_module_is_the_page_bundled_as_committed(tmp_path):
    """anywidget loads one ES module: widget.js with the page's own modules (page.js, reading.js, texts.js),
    bundled and minified by esbuild; the committed bundle is what `make widget` builds from today's sources, and
    it parses."""
    import shutil
    import subprocess

    from digitlab.notebook.widget import widget_module

    module = widget_module()
    assert not [line for line in module.splitlines() if line.startswith("import ")]
    assert "export{" in module.replace(" ", "") and "attachShadow" in module  # widget.js's render, exported
    assert "Draw one digit, larger." in module and "digitlab:stroke-start" in module  # texts.js and page.js
    if not (shutil.which("node") and shutil.which("npx")):
        pytest.skip("node and npx are needed to check the bundle")
    (tmp_path / "widget.mjs").write_text(module)
    subprocess.run(["node", "--check", str(tmp_path / "widget.mjs")], check=True)
    fresh = tmp_path / "fresh.js"
    built = subprocess.run(
        ["make", "-s", "widget", f"WIDGET_BUNDLE={fresh}"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    if built.returncode != 0:
        pytest.skip(f"esbuild could not be fetched from npm here: {built.stderr.strip()[-200:]}")
    assert fresh.read_text() == module, "the committed widget bundle is stale: run `make widget`"


def test_the_widget_shows_the_pages_markup():
    """The widget's shadow root holds the draw page's markup (every id page.js asks for) and its CSS."""
    import re

    from digitlab.notebook.widget import page_parts
    from digitlab.web import STATIC

    markup, css = page_parts()
    assert "<html" not in markup and "<body" not in markup
    page = (STATIC / "page.js").read_text()
    asked = set(re.findall(r'\$\("([a-z-]+)"\)', page)) - {"feedback", "thanks", "as-number", "setup-error"}
    assert asked and all(f'id="{name}"' in markup for name in asked), asked
    assert ".mode-number" in css and "body, .page" in css
