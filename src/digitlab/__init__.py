"""digitlab: a reference-quality MNIST pipeline with TensorFlow/Keras, from data to a draw-a-digit page.

The package is a stack of planes, each importing only the ones below it (checked by import-linter):
cli → serving | notebook → evaluation → explain → inference → training → models → data → core (errors, atomic, rundir).
"""

import lazy_loader

from digitlab.errors import (
    ConfigError,
    DataError,
    DigitlabError,
    FeedbackError,
    FetchError,
    ImageError,
    ModelError,
)

__version__ = "0.1.0"

__getattr__, __dir__, _lazy = lazy_loader.attach(
    __name__,
    submodules=["data", "evaluation", "explain", "inference", "models", "notebook", "serving", "training"],
    submod_attrs={
        "data.fetch": ["fetch_mnist"],
        "data.mnist": ["Mnist", "Splits", "load_mnist", "load_splits", "make_dataset", "split_train_validation"],
        "data.preprocess": ["to_mnist_28x28"],
        "inference.predictor": ["Predictor"],
        "models.saved": ["load_model"],
        "training.config": ["resolve_config"],
        "training.train": ["train_and_evaluate"],
    },
)

__all__ = [
    "ConfigError",
    "DataError",
    "DigitlabError",
    "FeedbackError",
    "FetchError",
    "ImageError",
    "ModelError",
    *_lazy,
]
