"""SavedModel signatures: loading them, even when TensorFlow cannot restore the objects, and choosing one.

A SavedModel answers through named signatures; TF1 exports often record no shapes, and TF Serving's own tutorial
makes `serving_default` take serialized `tf.Example` protos. `load_saved_model` and `choose_signature` are what
`digitlab import` and an imported run's loader use; `probe_signature` finds the layout and the output a shape-less
signature answers by running it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from digitlab.errors import ModelError, one_line
from digitlab.models.contract import LAYOUTS
from digitlab.tf_logging import import_tensorflow, library_output_silenced


def load_saved_model(path: Path) -> tuple[Any, str | None]:
    """Load a SavedModel's signatures, restoring its objects when TensorFlow can and skipping them when not.

    SavedModels written by Keras 2 (`model.save("dir")` on TF ≤ 2.15) often carry their optimizer's slot
    variables, which TensorFlow 2.16+ cannot restore without Keras 2's optimizer class ("'_UserObject' object has
    no attribute 'add_slot'", tensorflow/tensorflow#52091); their serving signatures need none of those objects.
    So when `tf.saved_model.load` fails, the MetaGraph's signatures are loaded alone, with their variables, the
    way TensorFlow loads a TF1 SavedModel (and TF Serving any SavedModel).

    Args:
        path: A SavedModel folder.

    Returns:
        (the loaded object, whose `.signatures` map names to callables; a note when only the signatures were
        loaded, else None).

    Raises:
        ModelError: neither way loads it (the message keeps TensorFlow's cause).
    """
    import_tensorflow()
    import tensorflow as tf

    with library_output_silenced():
        try:
            return tf.saved_model.load(str(path)), None
        except Exception as e:  # corrupt protobuf, missing variables, objects TF cannot revive, ...
            restoring = e
        try:
            # TensorFlow's own loader for SavedModels without an object graph: signatures and variables only
            from tensorflow.python.saved_model import load_v1_in_v2

            loaded = load_v1_in_v2.load(str(path), None)
        except Exception:  # the first failure is the one that explains the folder
            raise ModelError(f"cannot load the SavedModel {path.name}: {one_line(restoring)}") from restoring
    note = f"its objects could not be restored ({one_line(restoring, 100)}), so its signatures were loaded alone"
    return loaded, note


def choose_signature(path: Path, signatures: dict[str, Any], wanted: str | None = None) -> str:
    """The signature to call: `wanted`, else `serving_default` if it classifies digits, else the only one that does.

    Args:
        path: The SavedModel folder (for messages).
        signatures: Name → concrete function, as `loaded.signatures`.
        wanted: The `--signature` the user named, or None.

    Returns:
        The signature's name.

    Raises:
        ModelError: no signatures, `wanted` is not one, or it is unclear which one classifies a digit image (the
            message lists every signature with its inputs and outputs).
    """
    if not signatures:
        raise ModelError(f"the SavedModel {path.name} has no signature; save it with a tf.function input_signature")
    listing = "; ".join(f"{name}{_signature_words(fn)}" for name, fn in sorted(signatures.items()))
    if wanted is not None:
        if wanted not in signatures:
            raise ModelError(f"the SavedModel {path.name} has no signature {wanted!r}; its signatures: {listing}")
        problem = _not_a_digit_classifier(signatures[wanted])
        if problem:
            raise ModelError(f"the SavedModel's {wanted!r} signature {problem}; its signatures: {listing}")
        return wanted
    fit = [name for name, fn in sorted(signatures.items()) if not _not_a_digit_classifier(fn)]
    if "serving_default" in fit:
        return "serving_default"
    if len(fit) == 1:
        return fit[0]
    default = "serving_default" if "serving_default" in signatures else sorted(signatures)[0]
    why = _not_a_digit_classifier(signatures[default]) if default in signatures else "is missing"
    which = "several classify 28×28 digits" if fit else "none takes one 28×28 image and answers 10 classes"
    raise ModelError(
        f"the SavedModel {path.name}'s {default!r} signature {why}, and {which}: {listing}; "
        "choose one with --signature NAME"
    )


def _not_a_digit_classifier(signature) -> str | None:
    """Why a signature cannot be a one-image, 10-class digit classifier (None when it may be one).

    TF1 SavedModels often record no shapes at all (TF Serving's MNIST tutorial: "unknown rank"); such a
    signature may be one, and `_probe_signature` finds out by running it.
    """
    inputs = signature.structured_input_signature[1]
    if len(inputs) != 1:
        return f"takes {len(inputs)} inputs ({', '.join(sorted(inputs))}), not one image"
    name, spec = next(iter(inputs.items()))
    if spec.dtype.name not in ("float32", "float64", "uint8"):
        what = " (serialized tf.Example protos, not pixels)" if spec.dtype.name == "string" else ""
        return f"takes {spec.dtype.name} {name!r}{what}"
    if spec.shape.rank is not None and tuple(spec.shape[1:]) not in LAYOUTS.values():
        return f"takes {name!r} of shape {_shape_words(spec.shape)}, not 28×28 digits"
    if not _output_candidates(signature):
        return "has no output of 10 classes"
    return None


def _output_candidates(signature) -> list[str]:
    """Outputs that are, or may be (unknown shape), (N, 10): a name `logits` first."""
    names = [
        k
        for k, v in sorted(signature.structured_outputs.items())
        if v is not None and (v.shape.rank is None or (v.shape.rank == 2 and v.shape[1] in (10, None)))
    ]
    return sorted(names, key=lambda k: k != "logits")


def probe_signature(path: Path, name: str, signature: Any, input_name: str, spec: Any) -> tuple[tuple[int, ...], str]:
    """The signature's input shape (without the batch axis) and its (N, 10) output, from its record or by a run.

    Every digitlab layout holds a digit's 784 pixels in the same order, so the first layout a shape-less
    signature accepts reads digits as any other would.

    Args:
        path: The SavedModel folder (for messages).
        name: The signature's name.
        signature: The signature (a concrete function).
        input_name: Its one input.
        spec: The input's `tf.TensorSpec` (its shape may be of unknown rank).

    Returns:
        (the input shape without the batch axis, the name of the (N, 10) output).

    Raises:
        ModelError: no layout runs, or nothing it answers is (N, 10).
    """
    import tensorflow as tf

    shapes = [tuple(spec.shape[1:])] if spec.shape.rank is not None else list(LAYOUTS.values())
    batch = spec.shape[0] if spec.shape.rank and spec.shape[0] else 2
    for shape in shapes:
        try:
            with library_output_silenced():
                out = signature(**{input_name: tf.zeros((batch, *shape), spec.dtype)})
        except Exception:  # this layout does not fit the graph: try the next
            continue
        ten = [k for k in _output_candidates(signature) if tuple(out[k].shape) == (batch, 10)]
        if ten:
            return shape, ten[0]
    raise ModelError(
        f"the SavedModel's {name!r} signature answers no (N, 10) output for 28×28 digits in any layout "
        f"({', '.join(LAYOUTS)}); its outputs: {', '.join(sorted(signature.structured_outputs))}"
    )


def _shape_words(shape) -> str:
    return "(unknown)" if shape is None or shape.rank is None else str(tuple(shape))


def _signature_words(signature) -> str:
    """'(images: float32 (None, 784)) → scores (None, 10)' for the listing in a message."""
    inputs = ", ".join(
        f"{k}: {v.dtype.name} {_shape_words(v.shape)}" for k, v in signature.structured_input_signature[1].items()
    )
    outputs = ", ".join(
        f"{k} {_shape_words(getattr(v, 'shape', None))}" for k, v in signature.structured_outputs.items()
    )
    return f"({inputs}) → {outputs}"
