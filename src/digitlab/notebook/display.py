"""Pictures that render inline in a notebook.

A run's curves, confusion and mistakes, samples, a prediction grid, an explanation. Each returns an object
Jupyter displays (an `IPython.display.Image`), made by the same code as the report and the CLI, so the
notebook shows what the tools show. Figures are `matplotlib.figure.Figure` objects: the notebook's own
backend (inline or another) is never switched.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from IPython.display import Image

from digitlab.atomic import save_figure
from digitlab.data.images import to_unit_float


def _image(path: Path) -> Image:
    return Image(data=Path(path).read_bytes(), format="png")


def _figure(fig) -> Image:
    with tempfile.TemporaryDirectory() as tmp:
        return _image(save_figure(fig, Path(tmp) / "figure.png", dpi=90))


def _report_plot(run: str | Path, name: str) -> Image:
    """RUN/report/<name>, evaluating the run on the test split first if it has no report yet."""
    path = Path(run) / "report" / name
    if not path.is_file():
        from digitlab.evaluation.evaluate import evaluate_model

        evaluate_model(run)
    return _image(path)


def curves(run: str | Path) -> Image:
    """Training and validation loss and accuracy per epoch (the run is evaluated first if it has no report).

    Args:
        run: a run directory.

    Returns:
        The report's `curves.png`, displayed inline.
    """
    return _report_plot(run, "curves.png")


def confusion(run: str | Path) -> Image:
    """The confusion matrix on the test split: counts and row-normalised.

    Args:
        run: a run directory (evaluated first if it has no report).

    Returns:
        The report's `confusion.png`, displayed inline.
    """
    return _report_plot(run, "confusion.png")


def misclassified(run: str | Path) -> Image:
    """The test digits the model got wrong, most confident errors first.

    Args:
        run: a run directory (evaluated first if it has no report).

    Returns:
        The report's `misclassified.png`, displayed inline.
    """
    return _report_plot(run, "misclassified.png")


def sample_grid(images: np.ndarray, labels: np.ndarray, per_class: int = 10) -> Image:
    """Sample digits, one row per class.

    Args:
        images: (N, 28, 28) uint8.
        labels: (N,) classes 0-9.
        per_class: digits per row.

    Returns:
        The grid, displayed inline.
    """
    from digitlab.data.mnist import save_sample_grid

    with tempfile.TemporaryDirectory() as tmp:
        return _image(save_sample_grid(images, labels, Path(tmp) / "samples.png", per_class))


def prediction_grid(model, images: np.ndarray, labels: np.ndarray, rows: int = 4, columns: int = 11) -> Image:
    """The first rows × columns images with the model's answer above each; wrong answers in red.

    Args:
        model: a run directory, a model file or a `Predictor`.
        images: (N, 28, 28) uint8, or floats in [0, 1]; N ≥ rows × columns.
        labels: (N,) true classes 0-9.
        rows: grid rows.
        columns: grid columns.

    Returns:
        The grid, displayed inline.
    """
    from matplotlib.figure import Figure

    from digitlab.inference.predictor import Predictor

    predictor = model if isinstance(model, Predictor) else Predictor.load(model, log=lambda *_: None)
    n = rows * columns
    x = to_unit_float(images[:n])
    predicted = predictor.probabilities(x).argmax(1)
    fig = Figure(figsize=(columns * 0.9, rows * 1.05))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax, image, p, y in zip(axes.ravel(), x, predicted, labels[:n], strict=True):
        ax.imshow(image, cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(str(p), color="#c62828" if p != y else "#222", fontsize=11, fontweight="bold" if p != y else None)
        ax.axis("off")
    wrong = int(np.sum(predicted != labels[:n]))
    fig.suptitle(f"{n} test digits, predicted label above each: {wrong} wrong (red)", fontsize=10)
    return _figure(fig)


def explanation(
    model: str | Path, image, contrast: int | None = None, methods=("ig", "smoothgrad", "layercam")
) -> Image:
    """The `digitlab explain` panel for one image.

    Args:
        model: a run directory or a model file.
        image: any image input `to_mnist_28x28` takes, or a (28, 28) float array in [0, 1].
        contrast: explain the prediction rather than this class (0-9), or None.
        methods: attribution methods to draw (the class activation maps are left out for a model without a
            convolution).

    Returns:
        The panel, displayed inline.
    """
    from digitlab.data.preprocess import to_mnist_28x28
    from digitlab.explain.explanation import ModelExplainer
    from digitlab.explain.options import CAM_METHODS
    from digitlab.explain.render import panel

    explainer = ModelExplainer.load(model)
    pixels = np.asarray(image, np.float32)
    if pixels.shape != (28, 28):
        pixels = to_mnist_28x28(image).pixels
    label = int(explainer.explainer.logits(pixels)[0].argmax())
    usable = [m for m in methods if m not in CAM_METHODS or explainer.explainer.cam_index is not None]
    maps = {m: explainer.explainer.attribution(pixels, m, label, contrast) for m in usable}
    against = f" rather than {contrast}" if contrast is not None else ""
    return _figure(
        panel(pixels, explainer.explainer.activations(pixels), maps, f"predicted {label}; why {label}{against}?")
    )
