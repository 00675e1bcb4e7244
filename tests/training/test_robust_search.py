"""The default-model search (bench/robust_recipe.py) cannot be lost: each finished run is recorded at once, a
recorded run is never trained again, and the budget stops new runs. Trained here by a fake: the recorder's logic
is what is tested, not the training."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def search():
    path = Path(__file__).parents[2] / "bench" / "robust_recipe.py"
    sys.path.insert(0, str(path.parent))  # as when run as a script: its helpers (bench/_common.py) beside it
    try:
        spec = importlib.util.spec_from_file_location("robust_recipe", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["robust_recipe"] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


def _fake_train(trained: list):
    def train(phase, variant, seed):
        trained.append((phase, variant, seed))
        clean = 0.99 - (len(variant) % 7) / 10000  # a different score per variant
        return {
            "train_seconds": 1.0,
            "clean": clean,
            "held_out": {"pen skip": 0.9},
            "held_out_mean": 0.9 + seed / 1e4,
        }

    return train


def test_a_recorded_run_is_skipped_and_a_cut_line_is_run_again(search, tmp_path):
    runs = tmp_path / "runs.jsonl"
    jobs = [("screen", name, search.SCREEN_SEED) for name in list(search.VARIANTS)[:2]]
    trained: list = []
    assert search.run_pending(jobs, _fake_train(trained), None, runs) == 2
    lines = runs.read_text().splitlines()
    assert [json.loads(line)["variant"] for line in lines] == [v for _, v, _ in jobs]
    assert search.run_pending(jobs, _fake_train(trained), None, runs) == 0  # both recorded: nothing trains
    runs.write_text(lines[0] + "\n" + lines[1][:40])  # killed while writing the second line
    assert search.run_pending(jobs, _fake_train(trained), None, runs) == 1
    assert trained[-1] == jobs[1] and len(trained) == 3


def test_the_budget_stops_new_runs_but_keeps_what_finished(search, tmp_path):
    runs = tmp_path / "runs.jsonl"
    now = [0.0]

    def train(phase, variant, seed):
        now[0] += 25 * 60  # each run takes 25 minutes
        return _fake_train([])(phase, variant, seed)

    jobs = [("screen", name, search.SCREEN_SEED) for name in search.VARIANTS]
    assert search.run_pending(jobs, train, 40 * 60, runs, clock=lambda: now[0]) == 2  # started at 0 and 25 min
    assert len(search.read_runs(runs)) == 2


def test_a_changed_variant_is_a_new_run(search, tmp_path, monkeypatch):
    runs = tmp_path / "runs.jsonl"
    name = search.DEFAULT
    search.run_pending([("screen", name, 100)], _fake_train([]), None, runs)
    recipe, overrides = search.VARIANTS[name]
    monkeypatch.setitem(search.VARIANTS, name, (recipe, {**overrides, "epochs": 9}))
    assert search.run_pending([("screen", name, 100)], _fake_train([]), None, runs) == 1


def test_confirmation_follows_screening_and_takes_the_top_two(search, tmp_path):
    runs = tmp_path / "runs.jsonl"
    screen = search.plan([], with_test=False)
    assert {phase for phase, _, _ in screen} == {"screen"} and len(screen) == len(search.VARIANTS)
    search.run_pending(screen, _fake_train([]), None, runs)
    jobs = search.plan(search.read_runs(runs), with_test=False)
    confirm = [job for job in jobs if job[0] == "confirm"]
    top = search.ranked(search.summarise(search.read_runs(runs), "screen"))[:2]
    assert sorted({v for _, v, _ in confirm}) == sorted(top)
    assert {s for _, _, s in confirm} == set(search.CONFIRM_SEEDS) - {search.SCREEN_SEED}


def test_the_rule_never_picks_a_variant_that_loses_clean_accuracy(search):
    def entry(clean, held):
        return {"clean": {"mean": clean}, "held_out_mean": {"mean": held}}

    summary = {"a": entry(0.990, 0.90), "b": entry(0.9885, 0.99), "c": entry(0.9895, 0.93)}
    assert search.ranked(summary)[0] == "c"  # b holds out best but is 0.15 points below the best clean


def test_the_held_out_conventions_change_only_their_class(search, mnist):
    x, y = mnist.x_test[:400], mnist.y_test[:400]
    shifted = search.held_out_sets(x, y)
    for name, digit in (("flagged 1", 1), ("crossed 7", 7)):
        images, labels = shifted[name]
        assert set(labels) == {digit} and len(images) == int(np.sum(y == digit))
        assert np.all(images.astype(int).sum(axis=(1, 2)) > x[y == digit].astype(int).sum(axis=(1, 2)))


def test_the_switch_rule_needs_every_bar(search):
    chosen = "robust e3"

    def rows(variant, test, mnist_c, real, seconds):
        out = []
        for seed in search.TEST_SEEDS:
            out.append({"phase": "test", "variant": variant, "seed": seed, "test_accuracy": test, "seconds": seconds})
            out.append(
                {
                    "phase": "switch",
                    "variant": variant,
                    "seed": seed,
                    "mnist_c_alone_mean": mnist_c,
                    "real_digits": {"real-digits": real, "real-digits-2": real},
                }
            )
        return out

    base = rows(search.DEFAULT, 0.993, 0.835, 0.95, 25)
    good = search.switch_verdict(base + rows(chosen, 0.9930, 0.89, 0.95, 60), chosen)
    assert good["decided"] and good["switch"], good
    for worse in (rows(chosen, 0.9920, 0.89, 0.95, 60), rows(chosen, 0.993, 0.87, 0.95, 60)):
        assert not search.switch_verdict(base + worse, chosen)["switch"]  # clean test under 99.25; MNIST-C +3.5
    assert not search.switch_verdict(base + rows(chosen, 0.993, 0.89, 0.94, 60), chosen)["switch"]  # real digits
    assert not search.switch_verdict(base + rows(chosen, 0.993, 0.89, 0.95, 95), chosen)["switch"]  # too slow
    assert not search.switch_verdict(base, chosen)["decided"]  # the chosen one's runs are missing
