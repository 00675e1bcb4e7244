"""Models built the way the standard MNIST tutorials build them, outside digitlab: the worked examples of
`digitlab import` (the tests and `bench/import_speed.py` use them too).

Each is plain Keras / TensorFlow / ONNX, trained briefly on a real MNIST subset in the tutorial's own input
convention, then saved in the tutorial's format:

| name            | built as                                               | saved as                     |
| --------------- | ------------------------------------------------------ | ---------------------------- |
| cnn_softmax     | Sequential CNN ending in Dense(10, softmax)            | .keras and .h5               |
| mlp_28x28       | Input((28, 28)) → Flatten → Dense(128) → Dense(10, softmax) | .keras                  |
| dense_784       | a dense net on flattened (784,) vectors, logits out     | .keras                       |
| cnn_bytes       | a CNN fed raw 0–255 pixels                              | .keras                       |
| module_784      | a `tf.Module` of raw `tf.Variable`s, GradientTape loop  | `tf.saved_model.save` folder |
| torch_style     | channels first N×1×28×28, standardized (0.1307, 0.3081), fixed batch 1, log_softmax | .onnx |

Run `python examples/tutorial_models.py OUT_DIR` to write them all (about a minute on 2 cores), then e.g.
`digitlab import OUT_DIR/cnn_softmax.keras` or `digitlab serve --model OUT_DIR/torch_style.onnx`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def training_subset(n: int = 20000, data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first `n` MNIST training images (uint8, (n, 28, 28)) and labels."""
    from digitlab.data.mnist import load_mnist

    data = load_mnist(data_dir)
    return data.x_train[:n], data.y_train[:n]


def _fit(model, x, y, epochs: int = 2, lr: float = 3e-3) -> None:
    import keras

    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=128, epochs=epochs, verbose=0)


def cnn_softmax(x, y):
    """The Keras "simple MNIST convnet": (28, 28, 1) in [0, 1], probabilities out."""
    import keras
    from keras import layers

    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(8, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ]
    )
    _fit(model, (x / 255.0)[..., None], y)
    return model


def mlp_28x28(x, y):
    """The TensorFlow "beginner" quickstart: Input((28, 28)) in [0, 1] → Flatten → Dense → softmax."""
    import keras
    from keras import layers

    model = keras.Sequential(
        [
            keras.Input((28, 28)),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )
    _fit(model, x / 255.0, y)
    return model


def dense_784(x, y):
    """A dense net on flattened (784,) vectors in [0, 1], logits out (the classic end-to-end tutorials)."""
    import keras
    from keras import layers

    inputs = keras.Input((784,))
    hidden = layers.Dense(64, activation="relu")(inputs)
    model = keras.Model(inputs, layers.Dense(10)(hidden))
    model.compile(
        keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    model.fit(x.reshape(-1, 784) / 255.0, y, batch_size=128, epochs=2, verbose=0)
    return model


def cnn_bytes(x, y):
    """A CNN trained on raw 0–255 pixels, logits out (the pitfall custom-loop tutorials warn about)."""
    import keras
    from keras import layers

    inputs = keras.Input((28, 28, 1))
    h = layers.Conv2D(8, 3, activation="relu")(inputs)
    h = layers.MaxPooling2D()(h)
    model = keras.Model(inputs, layers.Dense(10)(layers.Flatten()(h)))
    model.compile(
        keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    model.fit(x[..., None].astype(np.float32), y, batch_size=128, epochs=2, verbose=0)
    return model


def module_784(x, y, steps: int = 1500, lr: float = 0.2):
    """A from-scratch `tf.Module`: raw variables, plain SGD in a GradientTape loop, a (None, 784) float32
    signature, logits out."""
    import tensorflow as tf

    class MLP(tf.Module):
        def __init__(self):
            super().__init__()
            self.w1 = tf.Variable(tf.random.stateless_normal((784, 64), seed=(1, 2)) * 0.05)
            self.b1 = tf.Variable(tf.zeros(64))
            self.w2 = tf.Variable(tf.random.stateless_normal((64, 10), seed=(3, 4)) * 0.05)
            self.b2 = tf.Variable(tf.zeros(10))

        @tf.function(input_signature=[tf.TensorSpec((None, 784), tf.float32, name="x")])
        def __call__(self, x):
            return tf.nn.relu(x @ self.w1 + self.b1) @ self.w2 + self.b2

    model = MLP()

    @tf.function
    def step(images, labels):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, model(images)))
        for v, g in zip(model.trainable_variables, tape.gradient(loss, model.trainable_variables), strict=True):
            v.assign_sub(lr * g)

    data = tf.data.Dataset.from_tensor_slices((x.reshape(-1, 784).astype(np.float32) / 255.0, y.astype(np.int64)))
    for images, labels in data.shuffle(len(x), seed=0).repeat().batch(128).take(steps):
        step(images, labels)
    return model


def _torch_like_net(batch_size: int | None):
    import keras
    from keras import layers

    inputs = keras.Input((1, 28, 28), batch_size=batch_size, name="input")
    h = layers.Permute((2, 3, 1))(inputs)  # channels first → last for the convolution
    h = layers.Conv2D(8, 3, activation="relu")(h)
    h = layers.MaxPooling2D()(h)
    return keras.Model(inputs, layers.Activation("log_softmax")(layers.Dense(10)(layers.Flatten()(h))))


def torch_style(x, y):
    """What a PyTorch MNIST tutorial exports: N×1×28×28 standardized inputs, a fixed batch of 1, log_softmax.

    Built in Keras (no PyTorch here): a twin with a free batch size trains, the fixed-batch copy gets its weights.
    """
    import keras

    twin = _torch_like_net(None)
    twin.compile(
        keras.optimizers.Adam(3e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),  # log-probabilities are valid logits
    )
    twin.fit(((x / 255.0 - MNIST_MEAN) / MNIST_STD)[:, None], y, batch_size=128, epochs=2, verbose=0)
    model = _torch_like_net(1)
    model.set_weights(twin.get_weights())
    return model


def _fix_batch(path: Path, size: int) -> None:
    import onnx

    model = onnx.load(str(path))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = size
    onnx.save(model, str(path))


def save_all(out: str | Path, data_dir: str | None = None, log=print) -> dict[str, Path]:
    """Train and save every model above under `out`; returns name → file."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    x, y = training_subset(data_dir=data_dir)
    files: dict[str, Path] = {}
    model = cnn_softmax(x, y)
    for suffix in (".keras", ".h5"):
        files[f"cnn_softmax{suffix}"] = out / f"cnn_softmax{suffix}"
        model.save(files[f"cnn_softmax{suffix}"])
    for name, build in (("mlp_28x28", mlp_28x28), ("dense_784", dense_784), ("cnn_bytes", cnn_bytes)):
        files[name] = out / f"{name}.keras"
        build(x, y).save(files[name])
    files["module_784"] = out / "module_784"
    tf.saved_model.save(module_784(x, y), str(files["module_784"]))
    files["torch_style"] = out / "torch_style.onnx"
    onnx_model = torch_style(x, y)
    onnx_model(np.zeros((1, 1, 28, 28), np.float32))
    onnx_model.export(str(files["torch_style"]), format="onnx", verbose=False)
    _fix_batch(files["torch_style"], 1)  # as torch.onnx.export writes it unless told about dynamic axes
    for name, path in files.items():
        log(f"{name:<18} {path}")
    return files


if __name__ == "__main__":
    save_all(sys.argv[1] if len(sys.argv) > 1 else "tutorial-models")
