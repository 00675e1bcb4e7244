"""Model files written the way people publish MNIST classifiers, built from one small trained dense net: the
worked examples of what `digitlab import` accepts (tests/importing/test_published.py and bench/import_speed.py
use them too).

No third-party file is copied: each builder writes the *format* a kind of published model comes in, with the
weights of `dense_weights` (784 → 64 ReLU → 10, trained for seconds on real MNIST), folded so that the file's
own input convention gives exactly the net's answers. So every file has a known "own accuracy" to compare with.

| builder                | what it stands for                                                                |
| ---------------------- | --------------------------------------------------------------------------------- |
| onnx_ir3               | the ONNX model zoo's `mnist-8`: IR 3 (initializers as inputs), opset 8, bytes, batch 1 |
| onnx_external_data     | an exporter's `model.onnx` + `model.onnx.data` (weights in a side file)           |
| onnx_symmetric         | a PyTorch tutorial's `Normalize((0.5,), (0.5,))`: inputs in [−1, 1], N×1×28×28   |
| onnx_normalised_inside | a net that L2-normalises each image itself: [0, 1] and [0, 255] give the same answers |
| savedmodel_with_slots  | a SavedModel whose object graph holds optimizer slot variables (Keras 2 on TF ≤ 2.15) |
| savedmodel_tf_keras    | `model.save("dir")` with Keras 2 (tf_keras)                                       |
| tf1_serving_tutorial   | TF Serving's `mnist_saved_model.py`: a tf.Example `serving_default`, `predict_images` |
| keras22_h5             | a Keras 2.2 `.h5`: a Sequential whose first layer carries `batch_input_shape`     |

Run `python examples/published_models.py OUT_DIR` to write them all (a few seconds; `tf_keras`, Keras 2, writes
the last two and is skipped where it is not installed), then e.g. `digitlab import OUT_DIR/mnist-8.onnx`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class DenseWeights:
    """784 → 64 ReLU → 10 logits, for inputs in [0, 1] (white digits on black)."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    def logits(self, x01: np.ndarray) -> np.ndarray:
        """(N, 28, 28) in [0, 1] → (N, 10) logits, in NumPy."""
        h = np.maximum(x01.reshape(len(x01), 784) @ self.w1 + self.b1, 0)
        return h @ self.w2 + self.b2

    def folded(self, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
        """(w1, b1) for inputs u = a·x + b: the same answers as x gives this net."""
        w1 = (self.w1 / a).astype(np.float32)
        return w1, (self.b1 - b * w1.sum(axis=0)).astype(np.float32)


def dense_weights(x: np.ndarray, y: np.ndarray, seed: int = 0) -> DenseWeights:
    """Train the dense net on (N, 28, 28) uint8 digits for 2 epochs (a few seconds)."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(64, "relu"), keras.layers.Dense(10)])
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x.reshape(-1, 784) / 255.0, y, batch_size=128, epochs=2, verbose=0)
    w1, b1, w2, b2 = (np.asarray(w, np.float32) for w in model.get_weights())
    return DenseWeights(w1, b1, w2, b2)


# --- ONNX ---------------------------------------------------------------------------------------------------------


def _onnx_dense(weights: DenseWeights, a: float, b: float, batch, opset: int, normalise: bool = False):
    from onnx import TensorProto, helper, numpy_helper

    w1, b1 = weights.folded(a, b)
    inits = {
        "W1": w1,
        "B1": b1,
        "W2": weights.w2,
        "B2": weights.b2,
        "shape": np.array([-1, 784], np.int64),
    }
    nodes = [helper.make_node("Reshape", ["Input3", "shape"], ["flat"])]
    fed = "flat"
    if normalise:  # x / ||x||₂ · 9.5 (MNIST's typical norm in [0, 1]): the scale of the input cancels
        inits["norm"] = np.array(9.5, np.float32)
        nodes += [
            helper.make_node("ReduceL2", ["flat"], ["l2"], axes=[1], keepdims=1),
            helper.make_node("Div", ["flat", "l2"], ["unit"]),
            helper.make_node("Mul", ["unit", "norm"], ["normalised"]),
        ]
        fed = "normalised"
    nodes += [
        helper.make_node("MatMul", [fed, "W1"], ["h1"]),
        helper.make_node("Add", ["h1", "B1"], ["h2"]),
        helper.make_node("Relu", ["h2"], ["h3"]),
        helper.make_node("MatMul", ["h3", "W2"], ["h4"]),
        helper.make_node("Add", ["h4", "B2"], ["Plus214_Output_0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mnist",
        [helper.make_tensor_value_info("Input3", TensorProto.FLOAT, [batch, 1, 28, 28])],
        [helper.make_tensor_value_info("Plus214_Output_0", TensorProto.FLOAT, [batch, 10])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    return graph, helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def onnx_ir3(weights: DenseWeights, out: Path) -> Path:
    """The model zoo's `mnist-8` shape of file: IR 3, opset 8, [0, 255] inputs, batch 1, initializers as inputs."""
    import onnx
    from onnx import helper

    graph, model = _onnx_dense(weights, 255.0, 0.0, 1, opset=8)
    model.ir_version = 3
    for init in graph.initializer:  # IR 3: every initializer is also a graph input
        dims = list(init.dims)
        model.graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, dims))
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return out


def onnx_external_data(weights: DenseWeights, out: Path) -> Path:
    """An ONNX file whose weights live in `<name>.data` beside it ([0, 1] inputs, any batch)."""
    import onnx

    _, model = _onnx_dense(weights, 1.0, 0.0, "N", opset=13)
    onnx.save(model, str(out), save_as_external_data=True, location=out.name + ".data", size_threshold=0)
    return out


def onnx_symmetric(weights: DenseWeights, out: Path) -> Path:
    """A PyTorch-style export for `Normalize((0.5,), (0.5,))`: inputs 2x − 1 in [−1, 1]."""
    import onnx

    _, model = _onnx_dense(weights, 2.0, -1.0, "N", opset=13)
    onnx.save(model, str(out))
    return out


def onnx_normalised_inside(weights: DenseWeights, out: Path) -> Path:
    """A net that divides each image by its own L2 norm first: unit and byte inputs give identical answers."""
    import onnx

    _, model = _onnx_dense(weights, 1.0, 0.0, "N", opset=13, normalise=True)
    onnx.save(model, str(out))
    return out


def own_onnx_logits(path: Path, x01: np.ndarray, a: float, b: float) -> np.ndarray:
    """What an ONNX file answers under its own convention u = a·x + b, one image at a time if its batch is fixed."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = (a * x01 + b).astype(np.float32)[:, None]
    name = session.get_inputs()[0].name
    fixed = isinstance(session.get_inputs()[0].shape[0], int)
    chunks = [feed[i : i + 1] for i in range(len(feed))] if fixed else [feed]
    return np.concatenate([session.run(None, {name: c})[0] for c in chunks])


# --- SavedModels --------------------------------------------------------------------------------------------------


def savedmodel_with_slots(weights: DenseWeights, out: Path) -> Path:
    """A SavedModel that TensorFlow ≥ 2.16 cannot restore as objects ("'_UserObject' object has no attribute
    'add_slot'"): its object graph holds an optimizer's slot variables, as Keras 2 on TF ≤ 2.15 wrote them.
    Its serving signature takes (None, 28, 28) in [0, 1] and answers probabilities."""
    import tensorflow as tf

    class Net(tf.Module):
        def __init__(self):
            super().__init__()
            self.w1, self.b1 = tf.Variable(weights.w1), tf.Variable(weights.b1)
            self.w2, self.b2 = tf.Variable(weights.w2), tf.Variable(weights.b2)
            self.optimizer = tf.compat.v1.train.AdamOptimizer(1e-9)

        @tf.function(input_signature=[tf.TensorSpec((None, 28, 28), tf.float32, name="flatten_input")])
        def __call__(self, x):
            h = tf.nn.relu(tf.reshape(x, (-1, 784)) @ self.w1 + self.b1)
            return {"dense_1": tf.nn.softmax(h @ self.w2 + self.b2)}

    net = Net()
    variables = [net.w1, net.b1, net.w2, net.b2]
    net.optimizer.apply_gradients([(tf.zeros_like(v), v) for v in variables])  # creates the slots
    tf.saved_model.save(net, str(out), signatures=net.__call__)
    return out


def savedmodel_tf_keras(weights: DenseWeights, out: Path) -> Path:
    """`model.save("dir")` with Keras 2 (tf_keras): a Sequential on (28, 28) in [0, 1], softmax out."""
    import tf_keras

    model = tf_keras.Sequential(
        [
            tf_keras.layers.Flatten(input_shape=(28, 28)),
            tf_keras.layers.Dense(64, activation="relu"),
            tf_keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.set_weights([weights.w1, weights.b1, weights.w2, weights.b2])
    model.compile(tf_keras.optimizers.legacy.Adam(), "sparse_categorical_crossentropy")
    model.save(str(out), save_format="tf")
    return out


def tf1_serving_tutorial(weights: DenseWeights, out: Path) -> Path:
    """TF Serving's MNIST tutorial (tensorflow/serving `mnist_saved_model.py`), in TF1 graph mode:
    `serving_default` classifies serialized tf.Example protos; `predict_images` takes (None, 784) in [0, 1]."""
    import tensorflow as tf

    v1 = tf.compat.v1
    with tf.Graph().as_default(), v1.Session() as session:
        serialized = v1.placeholder(tf.string, name="tf_example")
        features = {"x": v1.FixedLenFeature(shape=[784], dtype=tf.float32)}
        x = tf.identity(v1.parse_example(serialized, features)["x"], name="x")
        w1, b1 = v1.Variable(weights.w1), v1.Variable(weights.b1)
        w2, b2 = v1.Variable(weights.w2), v1.Variable(weights.b2)
        y = tf.nn.softmax(tf.matmul(tf.nn.relu(tf.matmul(x, w1) + b1), w2) + b2, name="y")
        session.run(v1.global_variables_initializer())
        values, indices = tf.nn.top_k(y, 10)
        classes = tf.strings.as_string(indices)  # the tutorial maps them through a lookup table
        info = v1.saved_model.utils.build_tensor_info
        classify = v1.saved_model.signature_def_utils.build_signature_def(
            inputs={"inputs": info(serialized)},
            outputs={"classes": info(classes), "scores": info(values)},
            method_name=v1.saved_model.signature_constants.CLASSIFY_METHOD_NAME,
        )
        predict = v1.saved_model.signature_def_utils.build_signature_def(
            inputs={"images": info(x)},
            outputs={"scores": info(y)},
            method_name=v1.saved_model.signature_constants.PREDICT_METHOD_NAME,
        )
        builder = v1.saved_model.builder.SavedModelBuilder(str(out))
        builder.add_meta_graph_and_variables(
            session,
            [v1.saved_model.tag_constants.SERVING],
            signature_def_map={"predict_images": predict, "serving_default": classify},
            main_op=v1.tables_initializer(),
            strip_default_attrs=True,
        )
        builder.save()
    return out


# --- Keras 2.2 .h5 ------------------------------------------------------------------------------------------------


def keras22_h5(weights: DenseWeights, out: Path) -> Path:
    """A Keras 2.2-era `.h5`: a Sequential whose first layer carries `batch_input_shape` (no InputLayer), with
    Keras 2.2's initializer configs and `keras_version` "2.2.4". Written by tf_keras, then its config rewritten."""
    import h5py
    import tf_keras

    model = tf_keras.Sequential(
        [
            tf_keras.layers.Dense(64, activation="relu", input_shape=(784,)),
            tf_keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.set_weights([weights.w1, weights.b1, weights.w2, weights.b2])
    written = out.with_suffix(".tf_keras.h5")
    model.save(str(written))
    shutil.move(written, out)
    with h5py.File(out, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        layers = [layer for layer in config["config"]["layers"] if layer["class_name"] != "InputLayer"]
        layers[0]["config"]["batch_input_shape"] = [None, 784]
        for layer in layers:
            layer["config"]["kernel_initializer"] = {
                "class_name": "VarianceScaling",
                "config": {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform", "seed": None},
            }
            layer["config"]["bias_initializer"] = {"class_name": "Zeros", "config": {}}
        config["config"]["layers"] = layers
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["keras_version"] = "2.2.4"
        if "training_config" in f.attrs:
            del f.attrs["training_config"]
    return out


BUILDERS = {
    "mnist-8.onnx": onnx_ir3,
    "external.onnx": onnx_external_data,
    "symmetric.onnx": onnx_symmetric,
    "normalised.onnx": onnx_normalised_inside,
    "slots_savedmodel": savedmodel_with_slots,
    "tf_keras_savedmodel": savedmodel_tf_keras,
    "tf_serving_tutorial": tf1_serving_tutorial,
    "keras22.h5": keras22_h5,
}
NEEDS_TF_KERAS = {"tf_keras_savedmodel", "keras22.h5"}


def save_all(out: str | Path, data_dir: str | None = None, log=print) -> dict[str, Path]:
    """Train the dense net once and write every kind above under `out`; returns name → file or folder."""
    import importlib.util

    from digitlab.data.mnist import load_mnist

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_mnist(data_dir)
    weights = dense_weights(data.x_train[:20000], data.y_train[:20000])
    has_tf_keras = importlib.util.find_spec("tf_keras") is not None
    files = {
        name: build(weights, out / name)
        for name, build in BUILDERS.items()
        if has_tf_keras or name not in NEEDS_TF_KERAS
    }
    for name, path in files.items():
        log(f"{name:<22} {path}")
    return files


if __name__ == "__main__":
    import sys

    save_all(sys.argv[1] if len(sys.argv) > 1 else "published-models")
