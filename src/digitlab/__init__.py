"""digitlab: a reference-quality MNIST pipeline with TensorFlow/Keras, from data to a draw-a-digit page."""

from digitlab.data import Mnist, Splits, load_mnist, load_splits, make_dataset, split_train_validation
from digitlab.errors import (
    ConfigError,
    DataError,
    DigitlabError,
    FeedbackError,
    FetchError,
    ImageError,
    ModelError,
)
from digitlab.fetch import fetch_mnist

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "DigitlabError",
    "FeedbackError",
    "FetchError",
    "ImageError",
    "Mnist",
    "ModelError",
    "Splits",
    "fetch_mnist",
    "load_mnist",
    "load_splits",
    "make_dataset",
    "split_train_validation",
]
