"""The layout itself: no import cycles, light paths that stay light, a core that imports without the extras, a
quiet CLI.

The layer order is import-linter's job (`lint-imports` in `make test`, contracts in pyproject.toml); these
check what a layers contract cannot see. Function size is ruff's (C901 and PLR09xx in pyproject.toml).
"""

import graphlib
import os
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "digitlab"


def test_no_import_cycles():
    graph = grimp.build_graph("digitlab")
    modules = {m for m in graph.modules if m.startswith("digitlab.") and not _is_package(m)}
    imports = {m: graph.find_modules_directly_imported_by(m) & modules for m in modules}
    try:
        graphlib.TopologicalSorter(imports).prepare()
    except graphlib.CycleError as e:
        raise AssertionError(f"import cycle: {' -> '.join(e.args[1])}") from e


def _is_package(module: str) -> bool:
    return (SRC.parent / module.replace(".", "/") / "__init__.py").is_file()


def test_every_plane_is_a_package_with_a_docstring():
    for plane in ("data", "models", "training", "inference", "explain", "evaluation", "serving", "notebook"):
        init = SRC / plane / "__init__.py"
        assert init.is_file(), plane
        assert init.read_text().startswith('"""'), f"{plane}/__init__.py says what the plane does"


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


@pytest.mark.parametrize("plane", ["data", "models", "training", "evaluation", "inference", "explain", "serving"])
def test_every_lazy_export_of_a_plane_resolves(plane):
    """Each plane's `__all__` is a hand-kept list naming modules: a renamed module must not leave a name that
    raises ModuleNotFoundError on first use (`digitlab.models.TransferModel` did)."""
    import importlib

    module = importlib.import_module(f"digitlab.{plane}")
    for name in module.__all__:
        assert getattr(module, name) is not None, f"digitlab.{plane}.{name}"


def test_the_training_fixtures_named_in_conftest_exist():
    """tests/conftest.py marks `slow` every test using a training fixture, by the fixture's name: a renamed
    fixture would silently move its tests to the fast tier."""
    import ast

    from conftest import TRAINING_FIXTURES

    tests = Path(__file__).parent
    defined = {
        n.name
        for path in tests.rglob("*.py")
        for n in ast.walk(ast.parse(path.read_text()))
        if isinstance(n, ast.FunctionDef) and any("fixture" in ast.unparse(d) for d in n.decorator_list)
    }
    assert defined >= TRAINING_FIXTURES, f"named in TRAINING_FIXTURES but not defined: {TRAINING_FIXTURES - defined}"


def test_cli_prints_no_tensorflow_log_lines():
    env = {k: v for k, v in os.environ.items() if k not in ("DIGITLAB_LOG", "TF_CPP_MIN_LOG_LEVEL")}
    run = subprocess.run(
        [sys.executable, "-m", "digitlab", "models"], capture_output=True, text=True, timeout=120, env=env
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("models:")
    assert run.stderr == "", run.stderr


def test_the_core_imports_without_the_extras(without_extras):
    """Data, models, training, evaluation, explain, inference and the CLI import with every extra's library
    missing (they import those lazily, where a command needs one)."""
    loaded = _imported_in_fresh_process(
        without_extras + "import digitlab, digitlab.cli\n"
        "from digitlab.cli.parser import build_parser\n"
        "build_parser()\n"
        "import digitlab.data.fetch, digitlab.data.mnist, digitlab.data.preprocess, digitlab.data.decode\n"
        "import digitlab.models.saved, digitlab.models.foreign, digitlab.models.imported, digitlab.models.export\n"
        "import digitlab.models.importing, digitlab.models.zoo, digitlab.models.contract\n"
        "import digitlab.training.train, digitlab.training.finetune, digitlab.evaluation.evaluate\n"
        "import digitlab.explain.engine, digitlab.explain.explain_command\n"
        "import digitlab.inference.predict, digitlab.inference.predictor, digitlab.inference.read_command\n"
        "import digitlab.inference.export_command, digitlab.inference.runtimes"
    )
    assert "digitlab.inference.predict" in loaded and "digitlab.training.train" in loaded


def test_a_missing_extra_is_named_in_one_line(without_extras):
    run = subprocess.run(
        [sys.executable, "-c", without_extras + "from digitlab.errors import require\nrequire('onnx', 'reading ONNX')"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "MissingDependency: reading ONNX needs onnx (pip install 'digitlab[export]')" in run.stderr
    assert "ModuleNotFoundError" in run.stderr  # chained: the cause is kept


def test_every_install_hint_names_an_extra_that_exists():
    import re
    import tomllib

    from digitlab.errors import EXTRAS

    extras = tomllib.loads((SRC.parents[1] / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(EXTRAS.values()) <= set(extras)
    for path in SRC.rglob("*.py"):
        for extra in re.findall(r"digitlab\[([\w,-]+)\]", path.read_text()):
            assert set(extra.split(",")) <= set(extras), (path, extra)


def test_a_command_of_a_missing_extra_names_the_extra(without_extras, tmp_path):
    code = f"from digitlab.cli import main\nsys.exit(main(['serve', '--model', {str(tmp_path)!r}]))"
    run = subprocess.run([sys.executable, "-c", without_extras + code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip() == "digitlab: error: digitlab serve needs fastapi (pip install 'digitlab[serve]')"
