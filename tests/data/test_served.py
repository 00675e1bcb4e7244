"""Served copies (data/served.py): training digits as the preprocessing serves a large drawing of them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from digitlab.data import served
from digitlab.data.mnist import Splits


@pytest.fixture(scope="module")
def copies(mnist):
    return mnist.x_train[:200], mnist.y_train[:200], served._copies((mnist.x_train[:200], 0, 0))


def _unit_rows(x: np.ndarray) -> np.ndarray:
    rows = x.reshape(len(x), -1).astype(np.float64)
    rows -= rows.mean(1, keepdims=True)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_copies_are_the_same_digits_normalised_as_mnist(copies):
    originals, labels, copied = copies
    assert copied.dtype == np.uint8 and copied.shape == originals.shape
    for copy in copied:
        assert copy.max() == 255  # ink found and brought to full intensity
        rows, cols = np.nonzero(copy > 0.3 * 255)
        assert max(np.ptp(rows), np.ptp(cols)) + 1 in range(18, 23)  # in MNIST's 20-px box
        assert np.hypot(*(np.array(ndimage.center_of_mass(copy)) - 13.5)) < 2.0  # centred by mass
    # the same digits: the original most like each copy (pixel correlation) is one of its class (96%; 10% by chance)
    nearest = (_unit_rows(copied) @ _unit_rows(originals).T).argmax(1)
    assert np.mean(labels[nearest] == labels) > 0.9
    # the drawings behind them are thinned and thickened: their share of ink spreads wider than MNIST's own (the
    # preprocessing then brings each stroke back toward MNIST's width, as it does for a person's pen)
    drawn = [served.drawn_large(d, np.random.default_rng([0, i])) for i, d in enumerate(originals)]
    share = np.array([np.mean(d > 0.3 * 255) / np.mean(o > 0.3 * 255) for d, o in zip(drawn, originals, strict=True)])
    assert share.min() < 0.6 * np.median(share) and share.max() > 1.6 * np.median(share)


def test_copies_are_cached_and_a_stale_cache_is_made_again(mnist, tmp_path, monkeypatch):
    x = mnist.x_train[200:230]
    first = served.served_copies(x, seed=3, data_dir=tmp_path, workers=1)
    (cached,) = (tmp_path / "served-copies").glob("*.npy")
    np.testing.assert_array_equal(np.load(cached), first)
    assert not np.array_equal(first, served.served_copies(x, seed=4, data_dir=tmp_path, workers=1))

    def no_work(*args):
        raise AssertionError("computed again")

    monkeypatch.setattr(served, "_computed", no_work)
    np.testing.assert_array_equal(served.served_copies(x, seed=3, data_dir=tmp_path, workers=1), first)
    stale = first.copy()
    stale[0] = 0  # as if the preprocessing had changed since the file was written
    np.save(cached, stale)
    monkeypatch.undo()
    np.testing.assert_array_equal(served.served_copies(x, seed=3, data_dir=tmp_path, workers=1), first)
    cached.write_bytes(b"not an array")  # a damaged file is made again too
    np.testing.assert_array_equal(served.served_copies(x, seed=3, data_dir=tmp_path, workers=1), first)
    np.testing.assert_array_equal(np.load(cached), first)


def test_with_served_copies_doubles_the_training_part_only(mnist, tmp_path):
    x, y = mnist.x_train[:40], mnist.y_train[:40]
    splits = Splits(x, y, mnist.x_train[40:50], mnist.y_train[40:50], mnist.x_test[:10], mnist.y_test[:10])
    from digitlab.training.train import with_served_copies

    doubled = with_served_copies(splits, seed=0, data_dir=tmp_path)
    assert doubled.x_train.shape == (80, 28, 28) and doubled.x_train.dtype == np.uint8
    np.testing.assert_array_equal(doubled.x_train[:40], x)
    np.testing.assert_array_equal(doubled.y_train, np.concatenate([y, y]))
    assert doubled.x_val is splits.x_val and doubled.x_test is splits.x_test


def test_copies_made_on_worker_processes_are_the_ones_made_here(mnist, tmp_path, monkeypatch):
    monkeypatch.setattr(served, "CHUNK", 10)  # three tasks for two spawned workers
    x = mnist.x_train[300:330]
    pooled = served.served_copies(x, seed=5, data_dir=tmp_path / "pooled", workers=2)
    np.testing.assert_array_equal(pooled, served.served_copies(x, seed=5, data_dir=tmp_path / "here", workers=1))
