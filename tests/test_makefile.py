"""`make report` (what `make run` calls before serving): `digitlab evaluate` runs only when the report is stale."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FAKE_DIGITLAB = """#!/bin/sh
# stands in for `digitlab evaluate RUN`: says it ran and writes what the real one writes last
echo "evaluated $2"
mkdir -p "$2/report" && touch "$2/report/report.html" "$2/calibration.json"
"""


@pytest.fixture
def make_report(tmp_path):
    """`make report` on a run holding only a model.keras, with a stand-in `digitlab` (the venv's stamps faked)."""
    if shutil.which("make") is None:
        pytest.skip("no make")
    bin_dir, run = tmp_path / "bin", tmp_path / "run"
    bin_dir.mkdir()
    run.mkdir()
    (run / "model.keras").write_bytes(b"model")
    (bin_dir / "python").touch()
    (bin_dir / ".installed-serve").touch()  # newer than pyproject.toml: nothing to install
    digitlab = bin_dir / "digitlab"
    digitlab.write_text(FAKE_DIGITLAB)
    digitlab.chmod(digitlab.stat().st_mode | stat.S_IXUSR)

    def run_make() -> str:
        args = ["make", "-s", "--no-print-directory", "report", f"RUN_DIR={run}", f"BIN={bin_dir}"]
        done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    return run, run_make


def test_the_report_is_made_again_only_when_stale(make_report):
    run, run_make = make_report
    report = run / "report" / "report.html"
    assert run_make().startswith("evaluated")  # no report yet
    assert run_make().startswith(f"report: {report} (current")  # nothing changed: the page serves at once

    (run / "model.keras").write_bytes(b"trained again")
    earlier = (run / "model.keras").stat().st_mtime - 10
    os.utime(report, (earlier, earlier))  # the model is newer than its report
    assert run_make().startswith("evaluated")

    (run / "calibration.json").unlink()  # what the page's confidences need
    assert run_make().startswith("evaluated")

    os.utime(report, (0, 0))  # older than digitlab's code (a pull, an upgrade)
    assert run_make().startswith("evaluated")
    assert run_make().startswith("report:")
