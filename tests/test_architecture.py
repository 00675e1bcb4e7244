"""The layout itself: no import cycles, modules of a readable size, light paths that stay light, a quiet CLI.

The layer order is import-linter's job (`lint-imports` in `make test`, contracts in pyproject.toml); these
check what a layers contract cannot see.
"""

import os
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "digitlab"
MAX_LINES = 420  # "no module over ~400 lines"


def _strongly_connected(graph, modules):
    """Tarjan's algorithm over `modules`; returns the components with more than one module (= cycles)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(m):
        index[m] = low[m] = counter[0]
        counter[0] += 1
        stack.append(m)
        on_stack.add(m)
        for n in graph.find_modules_directly_imported_by(m) & modules:
            if n not in index:
                visit(n)
                low[m] = min(low[m], low[n])
            elif n in on_stack:
                low[m] = min(low[m], index[n])
        if low[m] == index[m]:
            component = []
            while True:
                n = stack.pop()
                on_stack.discard(n)
                component.append(n)
                if n == m:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for m in sorted(modules):
        if m not in index:
            visit(m)
    return found


def test_no_import_cycles():
    graph = grimp.build_graph("digitlab")
    modules = {m for m in graph.modules if m.startswith("digitlab.") and not _is_package(m)}
    assert _strongly_connected(graph, modules) == []


def _is_package(module: str) -> bool:
    return (SRC.parent / module.replace(".", "/") / "__init__.py").is_file()


def test_every_plane_is_a_package_with_a_docstring():
    for plane in ("data", "models", "training", "inference", "explain", "evaluation", "serving", "notebook"):
        init = SRC / plane / "__init__.py"
        assert init.is_file(), plane
        assert init.read_text().startswith('"""'), f"{plane}/__init__.py says what the plane does"


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_module_size(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def _imported_in_fresh_process(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return set(out.split())


def test_light_paths_do_not_import_tensorflow():
    """Reading a model's metadata, preprocessing an image, the server's and the notebook's modules and the public
    names never start TensorFlow (the ONNX runtime path runs without it)."""
    loaded = _imported_in_fresh_process(
        "import digitlab, digitlab.data, digitlab.models, digitlab.inference\n"
        "from digitlab.data.preprocess import to_mnist_28x28\n"
        "from digitlab.models.saved import LoadedModel\n"
        "from digitlab.inference.predictor import Predictor\n"
        "from digitlab.data.fetch import fetch_mnist\n"
        "from digitlab.serving.app import create_app\n"
        "from digitlab.notebook.widget import draw"
    )
    assert "digitlab.data.preprocess" in loaded and "digitlab.inference.predictor" in loaded
    assert not {"tensorflow", "keras"} & loaded


def test_public_names_still_import():
    from digitlab import load_mnist, load_splits, make_dataset

    assert callable(load_mnist) and callable(load_splits) and callable(make_dataset)


def test_cli_prints_no_tensorflow_log_lines():
    env = {k: v for k, v in os.environ.items() if k not in ("DIGITLAB_LOG", "TF_CPP_MIN_LOG_LEVEL")}
    run = subprocess.run(
        [sys.executable, "-m", "digitlab", "models"], capture_output=True, text=True, timeout=120, env=env
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("models:")
    assert run.stderr == "", run.stderr
