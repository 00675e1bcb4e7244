"""IDX parsing, loading, the validation split and the tf.data pipelines, on the real files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from digitlab.data.idx import idx_bytes
from digitlab.data.mnist import (
    load_mnist,
    load_splits,
    make_dataset,
    read_idx,
    split_train_validation,
)
from digitlab.data.mnist_files import FILES
from digitlab.errors import DataError

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_mnist_loads_with_official_counts(mnist):
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_train.dtype == np.uint8
    assert mnist.x_test.shape == (10000, 28, 28) and mnist.y_test.dtype == np.uint8
    assert np.bincount(mnist.y_train).tolist() == TRAIN_COUNTS
    assert np.bincount(mnist.y_test).tolist() == TEST_COUNTS
    assert mnist.x_train.max() == 255 and mnist.x_train.min() == 0


def test_loading_again_from_cache_gives_the_same_arrays(mnist_dir, mnist):
    # how long it takes is measured, not asserted: bench/load_speed.py
    again = load_mnist(mnist_dir)
    assert np.array_equal(again.x_train, mnist.x_train) and np.array_equal(again.y_test, mnist.y_test)


def test_read_idx_good_file(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "ok").write_bytes(idx_bytes(arr))
    np.testing.assert_array_equal(read_idx(tmp_path / "ok", ndim=3), arr)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x00\x00\x08", "truncated"),
        (b"\x12\x34\x08\x01" + (3).to_bytes(4, "big") + b"abc", "bad magic"),
        (b"\x00\x00\x07\x01" + (3).to_bytes(4, "big") + b"abc", "bad magic"),
        (b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"abc", "truncated"),
        (b"\x00\x00\x08\x01" + (2).to_bytes(4, "big") + b"abc", "trailing bytes"),
        (b"\x00\x00\x08\x03" + (2).to_bytes(4, "big"), "inside the header"),
    ],
)
def test_read_idx_bad_files_name_file_and_problem(tmp_path, content, message):
    path = tmp_path / "bad-idx"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert "bad-idx" in str(info.value)


def test_read_idx_wrong_dims(tmp_path):
    (tmp_path / "labels").write_bytes(idx_bytes(np.zeros(5, np.uint8)))
    with pytest.raises(DataError, match="has 1 dimensions, expected 3"):
        read_idx(tmp_path / "labels", ndim=3)


def test_load_refuses_corrupt_file_without_fetch(tmp_path, mnist_dir):
    for name in FILES:
        (tmp_path / name).write_bytes((mnist_dir / name).read_bytes())
    data = bytearray((tmp_path / "t10k-labels-idx1-ubyte").read_bytes())
    data[100] ^= 1  # same size, one flipped bit
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(bytes(data))
    with pytest.raises(DataError, match="sha256 mismatch.*digitlab fetch"):
        load_mnist(tmp_path, fetch=False)


def test_load_without_data_says_what_to_run(tmp_path):
    with pytest.raises(DataError, match="missing.*digitlab fetch"):
        load_mnist(tmp_path, fetch=False)


def test_split_is_stratified_disjoint_and_seeded(mnist):
    train, val = split_train_validation(mnist.y_train, 5000, seed=0)
    assert len(train) == 55000 and len(val) == 5000
    assert not np.intersect1d(train, val).size
    assert np.union1d(train, val).size == 60000
    share = np.bincount(mnist.y_train[val], minlength=10) / 5000
    overall = np.bincount(mnist.y_train, minlength=10) / 60000
    np.testing.assert_allclose(share, overall, atol=0.001)
    again, _ = split_train_validation(mnist.y_train, 5000, seed=0)
    other, _ = split_train_validation(mnist.y_train, 5000, seed=1)
    np.testing.assert_array_equal(train, again)
    assert not np.array_equal(train, other)


def test_splits_keep_test_set_whole(mnist_dir):
    splits = load_splits(mnist_dir, validation_size=1000, seed=3, limit=2000)
    assert len(splits.x_train) == 2000 and len(splits.x_val) == 1000 and len(splits.x_test) == 10000


@pytest.mark.parametrize("flatten, one_hot", [(False, False), (True, True)])
def test_pipeline_shapes_dtypes_ranges(mnist, flatten, one_hot):
    import tensorflow as tf

    ds = make_dataset(mnist.x_test[:300], mnist.y_test[:300], batch_size=128, flatten=flatten, one_hot=one_hot)
    batches = list(ds)
    assert [int(x.shape[0]) for x, _ in batches] == [128, 128, 44]
    x, y = batches[0]
    assert x.dtype == tf.float32 and x.shape[1:] == ((784,) if flatten else (28, 28, 1))
    assert float(tf.reduce_min(x)) == 0.0 and float(tf.reduce_max(x)) == 1.0
    if one_hot:
        assert y.shape == (128, 10) and np.all(np.asarray(y).sum(axis=1) == 1)
    else:
        assert y.dtype == tf.int32
        np.testing.assert_array_equal(np.asarray(y), mnist.y_test[:128])
    np.testing.assert_allclose(np.asarray(x).reshape(128, 28, 28), mnist.x_test[:128] / 255.0, atol=1e-6)


def test_pipeline_shuffle_is_seeded_and_covers_everything(mnist):
    labels = np.arange(200) % 10
    images = mnist.x_test[:200]
    a = np.concatenate([y for _, y in make_dataset(images, labels, 64, shuffle=True, seed=7).as_numpy_iterator()])
    b = np.concatenate([y for _, y in make_dataset(images, labels, 64, shuffle=True, seed=7).as_numpy_iterator()])
    np.testing.assert_array_equal(a, b)
    assert sorted(a.tolist()) == sorted(labels.tolist()) and not np.array_equal(a, labels)


FIELD = Path(__file__).parents[1] / "field_cases"


def test_field_case_gzip_under_the_raw_name_is_read_as_gzip():
    """Was "bad magic number 0x1f8b0800": the magic bytes say gzip, whatever the name says."""
    images = read_idx(FIELD / "idx-gzip-under-raw-name" / "t10k-images-idx3-ubyte", ndim=3)
    labels = read_idx(FIELD / "idx-gzip-under-raw-name" / "t10k-labels-idx1-ubyte", ndim=1)
    assert images.shape == (10, 28, 28) and images.dtype == np.uint8 and images.max() > 0
    assert labels.tolist() == list(range(10))


def test_field_case_html_page_is_named(tmp_path):
    """Was "bad magic number 0x3c21444f": an HTML error page saved under an IDX name."""
    with pytest.raises(DataError, match="an HTML page, not IDX") as info:
        read_idx(FIELD / "idx-html-page" / "t10k-images-idx3-ubyte.gz")
    assert "t10k-images-idx3-ubyte.gz" in str(info.value)
    (tmp_path / "raw").write_bytes(b"\n  <html><body>Not Found</body></html>")  # under the raw name too
    with pytest.raises(DataError, match="an HTML page, not IDX"):
        read_idx(tmp_path / "raw")


def test_read_idx_names_double_gzip_byte_order_and_truncation(tmp_path):
    good = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    little = bytes([3, 8, 0, 0]) + b"".join(d.to_bytes(4, "little") for d in (2, 3, 4)) + good[16:]
    sizes_little = good[:4] + b"".join(d.to_bytes(4, "little") for d in (2, 3, 4)) + good[16:]
    cases = {
        "twice.gz": (gzip.compress(gzip.compress(good)), "still gzip"),
        "damaged.gz": (gzip.compress(good)[:-12], "gzip data, but damaged"),
        "little": (little, "byte order"),
        "sizes-little": (sizes_little, "byte order"),
        "short": (good[:-5], "truncated: 35 of 40 bytes"),
        "short.gz": (gzip.compress(good[:-5]), "truncated: 35 of 40 bytes"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DataError, match=message) as info:
            read_idx(tmp_path / name, ndim=3)
        assert str(info.value).startswith(str(tmp_path / name)), name
    (tmp_path / "once.gz").write_bytes(gzip.compress(good))
    np.testing.assert_array_equal(read_idx(tmp_path / "once.gz", ndim=3), np.arange(24).reshape(2, 3, 4))
