"""The model zoo: every model maps (N, 28, 28, 1) floats in [0, 1] to 10 logits (never a softmax).

Add a model by writing a builder `fn(options) -> keras.Model` here and registering it in
`registry.MODELS`; the CLI, both training loops, evaluation and serving pick it up from there.
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from digitlab.data.images import INPUT_SHAPE, NUM_CLASSES
from digitlab.errors import ConfigError
from digitlab.models.contract import MNIST_MEAN, MNIST_STD  # torchvision's Normalize values
from digitlab.models.registry import PYTORCH_INIT, ModelOptions, get_spec


def _regularizer(options: ModelOptions):
    return keras.regularizers.L2(options.weight_decay) if options.weight_decay else None


def _initializers(options: ModelOptions, fan_in: int) -> dict:
    """Kernel (and bias) initializers; "pytorch" is torch.nn.Conv2d/Linear's default, in built-in Keras classes.

    PyTorch draws weights from kaiming_uniform(a=√5), i.e. U(±√(1/fan_in)) = VarianceScaling(1/3, fan_in,
    uniform), and biases from U(±1/√fan_in) (Keras starts biases at 0). Built-in classes keep the saved model
    loadable by plain Keras in safe mode.
    """
    if options.initializer != PYTORCH_INIT:
        return {"kernel_initializer": options.initializer}
    bound = 1.0 / math.sqrt(fan_in)
    return {
        "kernel_initializer": keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"),
        "bias_initializer": keras.initializers.RandomUniform(-bound, bound),
    }


def _dense(units: int, options: ModelOptions, **kw):
    """A Dense layer, applied to its input (the input's width sets PyTorch-style initial bounds)."""

    def apply(x):
        init = _initializers(options, int(x.shape[-1]))
        return layers.Dense(units, kernel_regularizer=_regularizer(options), **init, **kw)(x)

    return apply


def _conv(filters: int, options: ModelOptions, kernel: int = 3, **kw):
    """A Conv2D layer, applied to its input (fan-in = input channels × kernel area)."""

    def apply(x):
        init = _initializers(options, int(x.shape[-1]) * kernel * kernel)
        return layers.Conv2D(filters, kernel, kernel_regularizer=_regularizer(options), **init, **kw)(x)

    return apply


def _image_input(options: ModelOptions):
    """The (28, 28, 1) input in [0, 1], then, with `standardize`, (x − mean) / std as a Rescaling layer.

    The scaling lives inside the model so every saved model keeps one input contract ([0, 1] pixels) for
    serving, exports and explanations.
    """
    inputs = keras.Input(INPUT_SHAPE, name="image")
    if not options.standardize:
        return inputs, inputs
    scale = layers.Rescaling(1.0 / MNIST_STD, offset=-MNIST_MEAN / MNIST_STD, name="standardize")
    return inputs, scale(inputs)


def _head(inputs, x, options: ModelOptions, name: str, hidden: int = 0) -> keras.Model:
    """Flatten → [Dense(hidden, ReLU)] → [Dropout(--dropout)] → Dense(10) "logits": the simple nets' common head."""
    x = layers.Flatten()(x)
    if hidden:
        x = _dense(hidden, options, activation="relu")(x)
    if options.dropout:
        x = layers.Dropout(options.dropout)(x)
    return keras.Model(inputs, _dense(NUM_CLASSES, options, name="logits")(x), name=name)


def build_mlp(options: ModelOptions) -> keras.Model:
    """Flatten → Dense(128, ReLU) → Dense(10): the "hello world" of Keras."""
    inputs, x = _image_input(options)
    return _head(inputs, x, options, "mlp", hidden=128)


def build_cnn(options: ModelOptions) -> keras.Model:
    """The classic Keras MNIST convnet: two conv/pool blocks and a linear head."""
    inputs, x = _image_input(options)
    x = _conv(32, options, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = _conv(64, options, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    return _head(inputs, x, options, "cnn")


def build_deep_cnn(options: ModelOptions) -> keras.Model:
    """Conv+BN pairs with growing dropout (the well-known ~99.5% Kaggle architecture)."""
    scale = 1.0 if options.dropout is None else options.dropout / 0.5  # --dropout sets the head's rate
    momentum = options.bn_momentum

    def conv_bn(x, filters):
        x = _conv(filters, options, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=momentum)(x)
        return layers.Activation("relu")(x)

    inputs, x = _image_input(options)
    x = conv_bn(conv_bn(x, 32), 32)
    x = layers.Dropout(0.2 * scale)(layers.MaxPooling2D(2)(x))
    x = conv_bn(conv_bn(x, 64), 64)
    x = layers.Dropout(0.3 * scale)(layers.MaxPooling2D(2)(x))
    x = conv_bn(x, 128)
    x = layers.Dropout(0.4 * scale)(layers.MaxPooling2D(2)(x))
    x = layers.Flatten()(x)
    x = _dense(200, options, use_bias=False)(x)
    x = layers.Activation("relu")(layers.BatchNormalization(momentum=momentum)(x))
    x = layers.Dropout(0.5 * scale)(x)
    return keras.Model(inputs, _dense(NUM_CLASSES, options, name="logits")(x), name="deep_cnn")


def build_fast_cnn(options: ModelOptions) -> keras.Model:
    """The fastest public recipe's net: conv24-5×5 → pool → conv32-3×3 → pool → dense-256 (valid padding).

    About half the multiply-adds of `cnn` (1.2M vs 2.4M per image): few channels where the maps are large, the
    capacity in a dense layer that costs one matrix multiply per batch.
    """
    inputs, x = _image_input(options)
    x = layers.MaxPooling2D(2)(_conv(24, options, kernel=5, activation="relu")(x))  # 12×12×24
    x = layers.MaxPooling2D(2)(_conv(32, options, kernel=3, activation="relu")(x))  # 5×5×32
    return _head(inputs, x, options, "fast_cnn", hidden=256)


def build_bn_cnn(options: ModelOptions) -> keras.Model:
    """Chris Deotte's MNIST CNN (~327k parameters).

    Pairs of 3×3 convs, a strided 5×5 conv instead of pooling, BatchNorm after every conv, dropout 0.4 between
    blocks. The best-known honest single model (99.64% over many seeds with augmentation).
    """
    rate = 0.4 if options.dropout is None else options.dropout
    momentum = options.bn_momentum

    def conv_bn(x, filters, kernel=3, **kw):
        x = _conv(filters, options, kernel=kernel, activation="relu", **kw)(x)
        return layers.BatchNormalization(momentum=momentum)(x)

    inputs, x = _image_input(options)
    x = conv_bn(conv_bn(x, 32), 32)  # 24×24
    x = layers.Dropout(rate)(conv_bn(x, 32, kernel=5, strides=2, padding="same"))  # 12×12
    x = conv_bn(conv_bn(x, 64), 64)  # 8×8
    x = layers.Dropout(rate)(conv_bn(x, 64, kernel=5, strides=2, padding="same"))  # 4×4
    x = conv_bn(x, 128, kernel=4)  # 1×1
    x = layers.Dropout(rate)(layers.Flatten()(x))
    return keras.Model(inputs, _dense(NUM_CLASSES, options, name="logits")(x), name="bn_cnn")


# --- the raw model: tf.Variable + tf.Module, no Keras layers -----------------------------------------------


class RawMLP(tf.Module):
    """The `mlp` maths with bare tf.Variables: logits = relu(x·W1 + b1)·W2 + b2, He-initialised.

    Trained only by the custom loop; `to_keras()` moves the trained variables into the equivalent Keras
    model so it saves, reloads and serves exactly like the others.
    """

    def __init__(self, hidden: int = 128, seed: int = 0, weight_decay: float = 0.0, name: str = "raw_mlp"):
        super().__init__(name=name)
        rng = tf.random.Generator.from_seed(seed)
        # He initialisation: N(0, 2/fan_in) keeps ReLU activations' variance constant through depth.
        self.w1 = tf.Variable(rng.normal((784, hidden), stddev=np.sqrt(2 / 784)), name="w1")
        self.b1 = tf.Variable(tf.zeros(hidden), name="b1")
        self.w2 = tf.Variable(rng.normal((hidden, NUM_CLASSES), stddev=np.sqrt(2 / hidden)), name="w2")
        self.b2 = tf.Variable(tf.zeros(NUM_CLASSES), name="b2")
        self.weight_decay = weight_decay

    @tf.function(input_signature=[tf.TensorSpec((None, *INPUT_SHAPE), tf.float32, name="image")])
    def serve(self, images: tf.Tensor) -> tf.Tensor:
        """The serving signature of the SavedModel: (N, 28, 28, 1) float32 in [0, 1] to (N, 10) logits."""
        return self(images)

    def __call__(self, images: tf.Tensor, training: bool = False) -> tf.Tensor:
        """(N, 28, 28, 1) or (N, 784) float32 in [0, 1] to (N, 10) logits (`training` is unused: no dropout)."""
        x = tf.reshape(images, (-1, 784))
        return tf.nn.relu(x @ self.w1 + self.b1) @ self.w2 + self.b2

    @property
    def losses(self) -> list[tf.Tensor]:
        """L2 penalty on the weight matrices, mirroring Keras' `model.losses`."""
        if not self.weight_decay:
            return []
        return [self.weight_decay * (tf.reduce_sum(self.w1**2) + tf.reduce_sum(self.w2**2))]

    def to_keras(self) -> keras.Model:
        """The same network as a plain Keras `mlp` holding these weights (what the run saves as model.keras)."""
        model = build_mlp(ModelOptions())
        dense = [layer for layer in model.layers if isinstance(layer, layers.Dense)]
        dense[0].set_weights([self.w1.numpy(), self.b1.numpy()])
        dense[1].set_weights([self.w2.numpy(), self.b2.numpy()])
        return keras.Model(model.input, model.output, name="raw_mlp")


def build_transfer(options: ModelOptions) -> keras.Model:
    """Registered so `digitlab models` and --model know it; the network itself depends on --base."""
    raise ConfigError("the transfer model is built from its --base by transfer_network.build_transfer_model")


def build_model(name: str, options: ModelOptions | None = None, seed: int = 0):
    """Build a fresh, untrained model by registry name: the one builder of every zoo network.

    Args:
      name: a registry name (`digitlab.models.registry.MODELS`), except "transfer", which is built from its
        base by `digitlab.models.transfer_network.build_transfer_model`.
      options: dropout, L2, initializer, BatchNorm momentum, standardization; a None dropout takes the
        registry's `default_dropout`.
      seed: the raw-mlp's weight seed (Keras models take theirs from `keras.utils.set_random_seed`).

    Returns:
      A keras.Model mapping (N, 28, 28, 1) float32 in [0, 1] to (N, 10) logits, or a RawMLP for raw-mlp.

    Raises:
      ConfigError: an unknown name, or "transfer".
    """
    spec = get_spec(name)
    options = options or ModelOptions()
    if options.dropout is None:
        options = dataclasses.replace(options, dropout=spec.default_dropout)
    if name == "raw-mlp":
        return RawMLP(seed=seed, weight_decay=options.weight_decay)
    return globals()[spec.builder](options)
