"""Data: MNIST and any image of a digit, up to the 28×28 arrays a model takes.

MNIST fetched and verified byte for byte, loaded, split and fed as tf.data pipelines; any image of a digit decoded
safely and turned into MNIST's 28×28; realistic test images made from MNIST digits. Uses only the core (`errors`,
`atomic`).
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "decode": ["MAX_PIXELS", "decode_data_url", "image_size", "load_image", "load_pixels"],
        "fetch": ["default_data_dir", "fetch_mnist", "verify_data_dir"],
        "mnist": ["Mnist", "Splits", "load_mnist", "load_splits", "make_dataset", "split_train_validation"],
        "preprocess": ["Processed", "to_mnist_28x28"],
        "served": ["served_copies"],
        "synthetic": ["STYLES", "browser_png", "render"],
    },
)
