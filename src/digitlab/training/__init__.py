"""Training: from settings to a finished run directory.

Settings and recipes, optimisers and schedules, the Keras `fit` loop and the GradientTape loop under any
`tf.distribute` strategy, resume, transfer phases, fine-tuning on the page's corrections, and local multi-worker
clusters. Uses `models`, `data` and the core.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "config": ["TrainConfig", "resolve_config"],
        "recipes": ["RECIPES"],
        "finetune": ["FinetuneConfig", "finetune"],
        "launch": ["launch"],
        "train": ["RunResult", "train_and_evaluate"],
    },
)
