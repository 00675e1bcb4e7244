"""Models: the architectures, their forward pass, and what a saved model is.

The registry of architectures (and the raw `tf.Module`), transfer networks, a model's forward pass, and what a saved
model is (`model.keras` + its run's settings + its fitted temperature). Uses `data` and the core. Names load on
first use, so reading a model's metadata never imports TensorFlow.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "calibration": ["fit_temperature", "negative_log_likelihood", "probabilities"],
        "forward": ["inference_function", "predict_logits"],
        "saved": ["CALIBRATION_FILE", "LoadedModel", "plain_keras_model", "load_model", "save_temperature"],
        "transfer_network": ["APPLICATIONS", "TransferModel", "build_transfer_model"],
        "registry": ["MODELS", "ModelOptions", "ModelSpec", "get_spec", "model_names"],
        "zoo": ["RawMLP", "build_model"],
    },
)
