"""The input/output contract between digitlab and a model it did not train, and the adapters that apply it.

digitlab's side is always the same: (N, 28, 28, 1) float32 in [0, 1], a white digit on black, in; (N, 10)
logits out. A user's model may want another side: a (28, 28), (784,) or channels-first (1, 28, 28) layout,
pixels scaled to [0, 255], to [−1, 1] (PyTorch's `Normalize((0.5,), (0.5,))`) or standardized with MNIST's
mean and std (0.1307, 0.3081), black ink on white,
float64 or uint8 tensors, a fixed batch size; and it may answer probabilities (a softmax head) or
log-probabilities (PyTorch's `log_softmax`) instead of logits. A `Contract` records which, and three adapters
apply it with the same arithmetic:

- `to_model_input` (NumPy), for detection and for runtimes that feed the model themselves;
- `keras_adapter`, built-in Keras layers in front (`Rescaling`, `Reshape`) and `ProbabilitiesToLogits`
  behind, around the user's network, which stays unchanged inside;
- `onnx_adapter`, the same as ONNX nodes around an ONNX graph.

Probabilities become logits by their log (softmax(log p) = p for rows summing to 1), floored at 1e-30 so a
probability that underflowed to 0 gives a very negative logit rather than −inf. Log-probabilities are
already logits (softmax(log_softmax(z)) = softmax(z)).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from digitlab.errors import ConfigError, ModelError, require

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # of the 60,000 training images scaled to [0, 1]
LAYOUTS = {"28x28x1": (28, 28, 1), "28x28": (28, 28), "784": (784,), "1x28x28": (1, 28, 28)}
SCALES = ("unit", "byte", "standard", "symmetric")
OUTPUTS = ("logits", "probabilities", "log-probabilities")
DTYPES = ("float32", "float64", "uint8")
FORMATS = ("keras", "savedmodel", "onnx")
PROBABILITY_FLOOR = 1e-30
MIN_ONNX_IR = 4  # the first IR version in which initializers need not be graph inputs (the adapter adds some)
SCHEMA = "digitlab.contract/1"
DIGITLAB_SIDE = {
    "input": "(N, 28, 28, 1) float32 in [0, 1], white digit on black, MNIST-style (to_mnist_28x28)",
    "output": "(N, 10) logits",
}
SCALE_WORDS = {
    "unit": "[0, 1]",
    "byte": "[0, 255]",
    "standard": f"standardized (x − {MNIST_MEAN}) / {MNIST_STD}",
    "symmetric": "[−1, 1]",  # PyTorch's Normalize((0.5,), (0.5,)), Keras' Rescaling(1/127.5, offset=-1)
}


@dataclass
class Contract:
    """What a foreign model takes and gives, as seen from digitlab's side (see the module docstring).

    Attributes:
      format: keras | savedmodel | onnx: how the model is stored and run.
      file: the model file inside the run directory (model.keras, source.onnx, savedmodel/).
      layout: 28x28x1 | 28x28 | 784 | 1x28x28, the model's input shape without the batch axis.
      scale: unit ([0, 1]) | byte ([0, 255]) | standard ((x − 0.1307) / 0.3081) | symmetric ([−1, 1], 2x − 1).
      invert: True when the model wants black ink on white (255 − x in bytes).
      outputs: logits | probabilities | log-probabilities, what the model answers.
      dtype: float32 | float64 | uint8, the model's input tensor type.
      batch: the model's fixed batch size, or None when any batch size is accepted.
      input_name, output_name: the tensor names a runtime feeds and reads (SavedModel and ONNX).
      signature: the SavedModel signature called.
      trust_code: the model holds code (a Lambda layer) and was accepted with --trust-code.
    """

    format: str
    file: str
    layout: str = "28x28x1"
    scale: str = "unit"
    invert: bool = False
    outputs: str = "logits"
    dtype: str = "float32"
    batch: int | None = None
    input_name: str | None = None
    output_name: str | None = None
    signature: str | None = None
    trust_code: bool = False
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check every enumerated field (raises ConfigError naming the field and the allowed values)."""
        for name, value, allowed in (
            ("format", self.format, FORMATS),
            ("layout", self.layout, tuple(LAYOUTS)),
            ("scale", self.scale, SCALES),
            ("outputs", self.outputs, OUTPUTS),
            ("dtype", self.dtype, DTYPES),
        ):
            if value not in allowed:
                raise ConfigError(f"contract {name} must be one of {', '.join(allowed)}, got {value!r}")

    @property
    def affine(self) -> tuple[float, float]:
        """(a, b) with model pixel = a · x + b for digitlab's x in [0, 1] (inversion and scale in one)."""
        a, b = (-1.0, 1.0) if self.invert else (1.0, 0.0)
        if self.scale == "byte":
            return a * 255.0, b * 255.0
        if self.scale == "standard":
            return a / MNIST_STD, (b - MNIST_MEAN) / MNIST_STD
        if self.scale == "symmetric":
            return 2.0 * a, 2.0 * b - 1.0
        return a, b

    @property
    def shape(self) -> tuple[int, ...]:
        """The model's input shape without the batch axis, e.g. (28, 28, 1) or (784,)."""
        return LAYOUTS[self.layout]

    def describe(self) -> str:
        """One line: 'input 784 floats in [0, 255], black on white; outputs probabilities'."""
        kind = "bytes" if self.dtype == "uint8" else "doubles" if self.dtype == "float64" else "floats"
        polarity = ", black ink on white" if self.invert else ""
        batch = f", fixed batch of {self.batch}" if self.batch else ""
        return f"input {self.layout} {kind} in {SCALE_WORDS[self.scale]}{polarity}{batch}; outputs {self.outputs}"

    def to_json(self) -> dict[str, Any]:
        """The contract as `contract.json` stores it (with its schema and digitlab's side of the mapping)."""
        return {"schema": SCHEMA, "digitlab_side": DIGITLAB_SIDE, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Contract:
        """Read a contract from `contract.json`'s content (unknown keys are ignored).

        Args:
            data: The parsed JSON object.

        Returns:
            The contract.

        Raises:
            ModelError: The object is not a valid contract.
        """
        known = set(cls.__dataclass_fields__)
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except (TypeError, ConfigError) as e:
            raise ModelError(f"contract.json is not a digitlab contract ({e})") from e


def to_model_input(x: np.ndarray, contract: Contract) -> np.ndarray:
    """Turn digitlab's images into what the model takes (layout, scale, polarity, dtype).

    Args:
        x: (N, 28, 28, 1) float32 in [0, 1], white digits on black (any shape of N·784 values).
        contract: The model's contract.

    Returns:
        (N, *contract.shape) of contract.dtype, scaled and inverted as the contract says.
    """
    a, b = contract.affine
    y = np.asarray(x, np.float32).reshape(-1, 28, 28, 1) * np.float32(a) + np.float32(b)
    y = y.reshape(-1, *contract.shape)
    if contract.dtype == "uint8":
        return np.clip(np.rint(y), 0, 255).astype(np.uint8)
    return y.astype(contract.dtype)


def to_logits(outputs: np.ndarray, kind: str) -> np.ndarray:
    """The model's answer → logits.

    Args:
        outputs: (N, 10) logits, probabilities or log-probabilities.
        kind: Which of those (`output_kind`).

    Returns:
        (N, 10) float32 logits (log-probabilities serve as logits; probabilities are logged, floored).
    """
    out = np.asarray(outputs, np.float32)
    if kind == "probabilities":
        return np.log(np.maximum(out, PROBABILITY_FLOOR))
    return out


def output_kind(outputs: np.ndarray, tolerance: float = 1e-3) -> str:
    """What a model answers: logits, probabilities or log-probabilities, from its answers on real digits.

    Rows that are non-negative and sum to 1 are probabilities; rows whose exp sums to 1 are log-probabilities.

    Args:
        outputs: (N, 10) a model's answers on real digits.
        tolerance: How far from 1 a row's sum may be.

    Returns:
        "logits", "probabilities" or "log-probabilities".
    """
    out = np.asarray(outputs, np.float64)
    if np.all(out >= -1e-6) and np.allclose(out.sum(axis=1), 1.0, atol=tolerance):
        return "probabilities"
    if np.all(out <= 1e-6) and np.allclose(np.exp(out).sum(axis=1), 1.0, atol=tolerance):
        return "log-probabilities"
    return "logits"


def _register_keras_layers():
    import keras

    @keras.saving.register_keras_serializable(package="digitlab")
    class ProbabilitiesToLogits(keras.layers.Layer):
        """log(max(p, 1e-30)): a softmax head's probabilities as logits (softmax of them gives p back)."""

        def call(self, probabilities):
            return keras.ops.log(keras.ops.maximum(probabilities, PROBABILITY_FLOOR))

        def compute_output_shape(self, input_shape):
            return input_shape

    return ProbabilitiesToLogits


_KERAS_LAYERS: dict[str, Any] = {}


def probabilities_to_logits_layer():
    """The registered `digitlab>ProbabilitiesToLogits` layer class (registered once, on first use)."""
    if "p2l" not in _KERAS_LAYERS:
        _KERAS_LAYERS["p2l"] = _register_keras_layers()
    return _KERAS_LAYERS["p2l"]


def keras_adapter(network, contract: Contract, name: str):
    """A functional Keras model on digitlab's side around `network` (a Keras layer or model, unchanged).

    In front: one `Rescaling` (inversion and scale) and a `Reshape` to the model's layout; behind:
    `ProbabilitiesToLogits` when the model answers probabilities. Loads in Keras' safe mode.

    Args:
        network: The imported Keras layer or model.
        contract: How digitlab's images map onto its input and how its output maps onto logits.
        name: The new model's name.

    Returns:
        A Keras model from (N, 28, 28, 1) float32 in [0, 1] to (N, 10) logits.
    """
    import keras
    from keras import layers

    inputs = keras.Input((28, 28, 1), name="image")
    a, b = contract.affine
    x = inputs
    if (a, b) != (1.0, 0.0):
        x = layers.Rescaling(a, b, name="contract_scale")(x)
    if contract.shape != (28, 28, 1):
        x = layers.Reshape(contract.shape, name="contract_layout")(x)
    x = network(x)
    if contract.outputs == "probabilities":
        x = probabilities_to_logits_layer()(name="contract_logits")(x)
    return keras.Model(inputs, x, name=name)


def onnx_adapter(model, contract: Contract):
    """A copy of an ONNX `ModelProto` on digitlab's side.

    Input `image` (N, 28, 28, 1) float32 in [0, 1], output `logits` (N, 10); the original graph unchanged in
    between. A fixed batch size stays fixed.

    Args:
        model: The imported `onnx.ModelProto` (not changed).
        contract: How digitlab's images map onto its input and its output onto logits.

    Returns:
        The adapted `onnx.ModelProto`.

    Raises:
        MissingDependency: onnx is not installed.
    """
    onnx = require("onnx", "adapting an ONNX model")
    from onnx import TensorProto, helper

    adapted = onnx.ModelProto()
    adapted.CopyFrom(model)
    # IR < 4 requires every initializer to be listed as a graph input (ONNX Runtime refuses the graph otherwise,
    # "initializer_arg was false"); from IR 4 they need not be. The graph's meaning does not change with it, and
    # the opset (which decides what each op does) stays as the file has it.
    adapted.ir_version = max(adapted.ir_version, MIN_ONNX_IR)
    graph = adapted.graph
    original_in = contract.input_name or graph.input[0].name
    original_out = contract.output_name or graph.output[0].name
    nodes, fed = _input_nodes(graph, contract)
    for node in graph.node:
        node.input[:] = [fed if name == original_in else name for name in node.input]
    tail = _output_nodes(original_out, contract)
    all_nodes = nodes + list(graph.node) + tail
    del graph.node[:]
    graph.node.extend(all_nodes)
    batch = contract.batch if contract.batch else "N"
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 28, 28, 1]))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10]))
    return adapted


def _input_nodes(graph, contract: Contract) -> tuple[list, str]:
    """(nodes, the tensor they feed the model): digitlab's `image` scaled, laid out, rounded to uint8, cast.

    Their constants are added to the graph's initializers.
    """
    from onnx import TensorProto, helper, numpy_helper

    a, b = contract.affine
    consts = {
        "contract_a": np.array(a, np.float32),
        "contract_b": np.array(b, np.float32),
        "contract_shape": np.array([-1, *contract.shape], np.int64),
        "contract_floor": np.array(PROBABILITY_FLOOR, np.float32),
    }
    if contract.dtype == "uint8":
        consts |= {
            "contract_half": np.array(0.5, np.float32),
            "contract_lo": np.array(0, np.float32),
            "contract_hi": np.array(255, np.float32),
        }
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
    nodes = [
        helper.make_node("Mul", ["image", "contract_a"], ["contract_scaled"]),
        helper.make_node("Add", ["contract_scaled", "contract_b"], ["contract_shifted"]),
        helper.make_node("Reshape", ["contract_shifted", "contract_shape"], ["contract_laid_out"]),
    ]
    fed = "contract_laid_out"
    if contract.dtype == "uint8":
        # floor(x + 0.5) and Max/Min, not Round and Clip's min/max inputs (opset 11): valid in the opset-8 graphs
        # of old files, and different from Round only at exact halves
        nodes += [
            helper.make_node("Add", [fed, "contract_half"], ["contract_halved"]),
            helper.make_node("Floor", ["contract_halved"], ["contract_rounded"]),
            helper.make_node("Max", ["contract_rounded", "contract_lo"], ["contract_above"]),
            helper.make_node("Min", ["contract_above", "contract_hi"], ["contract_clipped"]),
        ]
        fed = "contract_clipped"
    if contract.dtype != "float32":
        to = TensorProto.UINT8 if contract.dtype == "uint8" else TensorProto.DOUBLE
        nodes.append(helper.make_node("Cast", [fed], ["contract_cast"], to=to))
        fed = "contract_cast"
    return nodes, fed


def _output_nodes(original_out: str, contract: Contract) -> list:
    """The nodes from the model's output to digitlab's `logits`: float32, and log of probabilities (floored)."""
    from onnx import TensorProto, helper

    tail = [helper.make_node("Cast", [original_out], ["contract_out_f32"], to=TensorProto.FLOAT)]
    if contract.outputs == "probabilities":
        tail += [
            helper.make_node("Max", ["contract_out_f32", "contract_floor"], ["contract_floored"]),
            helper.make_node("Log", ["contract_floored"], ["logits"]),
        ]
    else:
        tail.append(helper.make_node("Identity", ["contract_out_f32"], ["logits"]))
    return tail
