"""Shared fixtures: the real MNIST data (fetched once per machine) and small real subsets of it."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from digitlab.data import load_mnist
from digitlab.fetch import default_data_dir, fetch_mnist


@pytest.fixture(scope="session")
def mnist_dir():
    """The real, verified MNIST data directory (fetched through the normal source chain if missing)."""
    return fetch_mnist(default_data_dir()).data_dir


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    return load_mnist(mnist_dir)
