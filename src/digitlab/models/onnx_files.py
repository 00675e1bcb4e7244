"""ONNX files and sessions: reading a file with its side weights, and running a graph under ONNX Runtime.

`read_onnx` gives one self-contained `ModelProto` (weights kept in `.data` files read in); `OnnxSession` runs a
graph on one thread without spinning, a fixed batch size fed in slices (`looped`). Foreign-model detection, an
imported model's adapted graph (`imported.OnnxNetwork`) and the onnx runtime (`inference.runtimes.OnnxRuntime`) all
run through them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from digitlab.errors import ModelError, one_line, require


def read_onnx(path: Path):
    """Read an ONNX file as one self-contained `ModelProto`: tensors it keeps in separate files are read in.

    Exporters write a model's weights to a side file (`model.onnx.data`) when asked or when it is large;
    digitlab keeps the model as one file afterwards, so the run does not depend on the side file staying put.

    Args:
        path: An `.onnx` file, with any external-data files it names beside it.

    Returns:
        The checked `onnx.ModelProto`, every tensor inline.

    Raises:
        ModelError: the file is not ONNX, names a side file that is missing or outside its folder, or fails
            ONNX's checker.
        MissingDependency: onnx is not installed.
    """
    onnx = require("onnx", "reading ONNX models")
    from onnx.external_data_helper import ExternalDataInfo, load_external_data_for_model, uses_external_data

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # truncated or not ONNX at all
        raise ModelError(f"{path.name} is not a readable ONNX model ({one_line(e, 160)})") from e
    external = sorted({ExternalDataInfo(t).location for t in _tensors(proto.graph) if uses_external_data(t)})
    folder = path.resolve().parent
    for location in external:
        side = (folder / location).resolve()
        if folder not in side.parents:
            raise ModelError(f"{path.name} names weights outside its folder ({location}); refusing to read them")
        if not side.is_file():
            raise ModelError(
                f"{path.name} keeps its weights in a separate file, {location}, which is not beside it in "
                f"{folder}: copy {location} there too"
            )
    try:
        if external:
            load_external_data_for_model(proto, str(folder))
        onnx.checker.check_model(proto)
    except Exception as e:
        raise ModelError(f"{path.name} is not a valid ONNX model ({one_line(e, 160)})") from e
    return proto


def _tensors(graph):
    """Every tensor a graph holds: its initializers and the constants in node attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _tensors(subgraph)


def looped(run: Callable[[np.ndarray], np.ndarray], batch: int) -> Callable[[np.ndarray], np.ndarray]:
    """`run` for a model with a fixed batch size: the input in slices of `batch`, the last one padded.

    Args:
        run: Runs exactly `batch` rows, (batch, ...) → (batch, 10).
        batch: The model's fixed batch size (≥ 1).

    Returns:
        A function of any number N of rows, (N, ...) → (N, 10).
    """

    def looped(x: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(x), batch):
            part = x[i : i + batch]
            pad = batch - len(part)
            if pad:
                part = np.concatenate([part, np.zeros((pad, *part.shape[1:]), part.dtype)])
            out.append(run(part)[: batch - pad])
        return np.concatenate(out) if out else np.zeros((0, 10), np.float32)

    return looped


class OnnxSession:
    """An ONNX model under ONNX Runtime, on `threads` threads and not spinning.

    Idle workers give their core back at once. `run(x)` answers the `output` tensor (default: the graph's first
    output) for the graph's one input; a graph with a fixed batch size is fed in slices of that size (`looped`).

    Detection runs a foreign graph through it, an imported model's adapted graph is one (`OnnxNetwork`), and so
    is the onnx runtime's session (`inference.runtimes.OnnxRuntime`).
    """

    def __init__(self, model_bytes: bytes, name: str, output: str | None = None, threads: int = 1):
        """Open an ONNX Runtime session on one thread pool that does not spin.

        Args:
            model_bytes: A serialised ONNX `ModelProto`.
            name: The file's name, for messages.
            output: The output tensor to answer (default: the graph's first output).
            threads: ONNX Runtime's intra-op threads (≥ 1).

        Raises:
            MissingDependency: onnxruntime is not installed.
            ModelError: ONNX Runtime cannot load the bytes.
        """
        ort = require("onnxruntime", "running ONNX models")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # InvalidProtobuf, unsupported op, ...: all mean "this file cannot be run"
            raise ModelError(f"ONNX Runtime cannot load {name}: {one_line(e)}") from e
        self.name = name
        self.model_bytes = model_bytes
        first = self.session.get_inputs()[0]
        self.input = first.name
        self.batch = first.shape[0] if isinstance(first.shape[0], int) and first.shape[0] > 0 else None
        self.output = output or self.session.get_outputs()[0].name

    def _run_once(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output], {self.input: x})[0]

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run the graph on `x`, in slices of the graph's batch size when it has a fixed one.

        Args:
            x: The graph's one input, of the shape and dtype it declares (N first).

        Returns:
            The `output` tensor for all N rows.
        """
        return looped(self._run_once, self.batch)(x) if self.batch else self._run_once(x)
