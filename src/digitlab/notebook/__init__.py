"""Notebook: the draw-a-digit canvas inside Jupyter and Colab, and pictures that render inline.

`draw()` is an anywidget; the pictures are a run's curves, confusion and mistakes, samples, a prediction grid,
an explanation. Needs the `notebook` extra (anywidget, IPython). Uses `evaluation`, `explain`, `inference`,
`models`, `data` and the core.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "display": ["confusion", "curves", "explanation", "misclassified", "prediction_grid", "sample_grid"],
        "widget": ["DrawWidget", "draw"],
    },
)
