"""The repository URL lives in one place, `[project.urls]` in pyproject.toml; the notebooks are static JSON, so
their install cell and "Open in Colab" badge copy it, and these tests keep every copy equal to it."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# The install cell's requirement: `digitlab[notebook] @ git+https://github.com/OWNER/NAME`.
INSTALL = re.compile(r"@ git\+(https://github\.com/[\w.-]+/[\w.-]+?)(?:\.git)?[\"'@#]")
# Colab opens a GitHub file as colab.research.google.com/github/OWNER/NAME/blob/BRANCH/PATH.
COLAB = re.compile(r"https://colab\.research\.google\.com/github/([\w.-]+)/([\w.-]+)/blob/[\w.-]+/([\w./-]+\.ipynb)")


def repository_url() -> str:
    """The `Repository` entry of `[project.urls]`, without a trailing slash."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["project"]["urls"]["Repository"].rstrip("/")


def cell_sources(path: Path, cell_type: str) -> list[str]:
    """The source text of every cell of one type in a notebook, in order."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == cell_type]


def test_there_are_notebooks_to_check():
    assert NOTEBOOKS, "no notebooks found: the link tests would pass vacuously"


def test_repository_url_is_a_github_repository():
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", repository_url())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_install_cell_installs_from_the_repository(path: Path):
    urls = [m.group(1) for src in cell_sources(path, "code") for m in INSTALL.finditer(src)]
    assert urls, f"{path.name}: no install cell with 'digitlab[notebook] @ git+URL'"
    assert set(urls) == {repository_url()}, f"{path.name} installs from {urls}, pyproject says {repository_url()}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_badge_opens_this_notebook_in_the_repository(path: Path):
    links = [m.groups() for src in cell_sources(path, "markdown") for m in COLAB.finditer(src)]
    assert links, f"{path.name}: no 'Open in Colab' link"
    for owner, name, file in links:
        assert f"https://github.com/{owner}/{name}" == repository_url(), f"{path.name}: Colab link to {owner}/{name}"
        assert file == path.relative_to(ROOT).as_posix(), f"{path.name}: Colab link opens {file}"
