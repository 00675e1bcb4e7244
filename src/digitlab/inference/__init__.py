"""Inference: a trained model answering new images, one at a time or a folder at a time (`digitlab predict`).

Its probabilities are calibrated (the run's fitted temperature). Uses `models`, `data` and the core.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "predict": ["Prediction", "collect_paths", "predict_files", "run_predict"],
        "predictor": ["Predictor"],
        "verdict": ["Answer", "answer_all"],
    },
)
