"""`digitlab predict` on a folder of realistic and broken files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from digitlab.cli import main
from digitlab.data.synthetic import render


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory, mnist):
    folder = tmp_path_factory.mktemp("images")
    (folder / "nested").mkdir()
    rng = np.random.default_rng(0)
    labels = {}
    for i, style in enumerate(["canvas", "black-on-white", "transparent", "photo", "thick", "thin"]):
        image = render(mnist.x_test[i], style, rng)
        name = f"nested/{i}-{style}.png" if style != "photo" else f"{i}-{style}.jpg"
        image.save(folder / name)
        labels[name] = int(mnist.y_test[i])
    Image.fromarray(np.full((300, 300), 255, np.uint8)).save(folder / "blank.png")
    (folder / "notes.png").write_text("this is not an image")
    (folder / "empty.png").write_bytes(b"")
    good = (folder / "nested/0-canvas.png").read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    Image.new("1", (12000, 12000)).save(folder / "bomb.png")  # 144 MP, a few KB on disk
    (folder / "readme.txt").write_text("ignored: not an image suffix")
    return folder, labels


def test_predict_folder_json(image_folder, trained_run, capsys, tmp_path):
    folder, labels = image_folder
    code = main(["predict", str(folder), "--model", str(trained_run), "--json", "--save-processed", str(tmp_path)])
    out = capsys.readouterr()
    rows = {json.loads(line)["path"]: json.loads(line) for line in out.out.splitlines()}
    assert code == 1  # some files failed
    assert len(rows) == 11 and not any(p.endswith("readme.txt") for p in rows)
    for name, label in labels.items():
        row = rows[str(folder / name)]
        assert row["label"] == label, (name, row)
        assert len(row["probabilities"]) == 10 and abs(sum(row["probabilities"]) - 1) < 1e-4
        assert row["top_k"][0]["label"] == label and len(row["top_k"]) == 3
    assert rows[str(folder / "blank.png")]["blank"] is True and rows[str(folder / "blank.png")]["label"] is None
    for bad, message in [
        ("notes.png", "not a recognised image"),
        ("empty.png", "not a recognised image"),
        ("truncated.png", "truncated"),
        ("bomb.png", "over the limit"),
    ]:
        assert message in rows[str(folder / bad)]["error"], rows[str(folder / bad)]
    assert "11 images" in out.err and "4 failed" in out.err
    assert len(list(tmp_path.glob("*.png"))) == 7  # six digits and the blank canvas
    saved = np.asarray(Image.open(sorted(tmp_path.glob("*.png"))[0]))
    assert saved.shape == (28, 28)


def test_predict_text_output_and_success_status(image_folder, trained_run, capsys):
    folder, labels = image_folder
    path = folder / "nested/0-canvas.png"
    assert main(["predict", str(path), "--model", str(trained_run), "--top-k", "2"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{path}: {labels['nested/0-canvas.png']}  (top-2:")


def test_predict_bad_arguments(tiny_cnn, tmp_path, capsys):
    assert main(["predict", str(tmp_path), "--model", str(tiny_cnn)]) == 2
    assert "no images found" in capsys.readouterr().err
    assert main(["predict", str(tmp_path), "--model", str(tmp_path / "missing")]) == 2


def test_worker_processes_match_in_process(image_folder, trained_run, capsys):
    """Enough files to start the process pool (≥ 64): same answers, same order as in-process, bad files too."""
    from digitlab.inference.predict import collect_paths, predict_files
    from digitlab.inference.predictor import Predictor

    folder, _ = image_folder
    paths = collect_paths([folder]) * 6  # 66 files, four of them broken in different ways
    model = Predictor.load(trained_run)
    pooled = [p.to_json() for p in predict_files(paths, model, progress=False, workers=2, batch_size=16)]
    inline = [p.to_json() for p in predict_files(paths, model, progress=False, workers=1, batch_size=16)]
    assert len(pooled) == len(paths) and [r["path"] for r in pooled] == [str(p) for p in paths]
    assert pooled == inline
    assert sum("error" in r for r in pooled) == 4 * 6
    assert main(["predict", str(folder), "--model", str(trained_run), "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err


def test_auto_without_onnx_runtime_says_so_in_one_line_and_predicts(tiny_cnn, image_folder, without_extras):
    """The core install (no extras): `--runtime auto` runs Keras and says in one line how to get the faster
    runtime."""
    import subprocess
    import sys

    folder, _ = image_folder
    image = folder / "nested/0-canvas.png"
    code = f"from digitlab.cli import main\nsys.exit(main(['predict', {str(image)!r}, '--model', {str(tiny_cnn)!r}]))"
    run = subprocess.run([sys.executable, "-c", without_extras + code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"{image}: ")
    notes = [line for line in run.stderr.splitlines() if line.startswith("runtime auto")]
    assert notes == ["runtime auto runs Keras: ONNX Runtime is not installed (pip install 'digitlab[serve]' is faster)"]
