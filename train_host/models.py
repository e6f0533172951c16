"""The paper's two architectures (Arriaga et al. 2017), Keras 3.

``mini_xception``: two 3x3 convs, four residual blocks of depthwise-separable
convs with BatchNorm and ReLU, max-pool and a strided 1x1 residual, a last conv
to the class count, global average pooling and softmax (about 58k parameters at
64x64x1 with 7 classes).

``sequential_cnn``: the "sequential fully-CNN" (conv/BatchNorm/ReLU stacks with
average pooling and dropout, global average pooling; about 600k parameters).
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, regularizers

ARCHITECTURES = ("mini_xception", "sequential_cnn")


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian taps out to 3 sigma."""
    radius = max(1, int(math.ceil(3 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return (taps / taps.sum()).astype(np.float32)


@keras.saving.register_keras_serializable(package="pi_face_emotion")
class ReflectPad2D(layers.Layer):
    """Mirror the border (OpenCV's BORDER_REFLECT_101) so the frozen blur needs no zero padding.

    Zero padding would pull the face's edges towards mid-grey; the training
    faces were blurred with mirrored borders, and that costs 0.9 points of
    emotion accuracy when it differs. TFLite runs it as MIRROR_PAD (int8).
    """

    def __init__(self, pad: int, **kwargs):
        super().__init__(**kwargs)
        self.pad = int(pad)

    def call(self, inputs):
        p = self.pad
        return keras.ops.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        grow = lambda n: None if n is None else n + 2 * self.pad  # noqa: E731
        return batch, grow(height), grow(width), channels

    def get_config(self):
        return super().get_config() | {"pad": self.pad}


def input_blur(x, sigma: float):
    """Frozen separable Gaussian blur (mirror padding, two depthwise convs) at the front of a model.

    Used when the training images are blurrier than what the model will see
    (FER-2013's Training split as shipped in ../shared is blurred with a
    Gaussian of about 3 pixels while PublicTest and camera crops are sharp):
    the trained graph runs on the blurred training faces as they are, and the
    exported graph blurs its input by the same amount, exactly as
    ``cv2.GaussianBlur`` would, so every consumer of the model (device,
    evaluation, TFLite) sees what training saw.
    """
    taps = gaussian_kernel(sigma)
    x = ReflectPad2D(taps.size // 2, name="input_blur_pad")(x)
    horizontal = layers.DepthwiseConv2D((1, taps.size), padding="valid", use_bias=False, trainable=False,
                                        name="input_blur_h")
    vertical = layers.DepthwiseConv2D((taps.size, 1), padding="valid", use_bias=False, trainable=False,
                                      name="input_blur_v")
    x = horizontal(x)
    horizontal.set_weights([taps.reshape(1, taps.size, 1, 1)])
    x = vertical(x)
    vertical.set_weights([taps.reshape(taps.size, 1, 1, 1)])
    return x


def residual_block(x, b: int, width: int, subsample_residual: bool = False, prefix: str = ""):
    """Mini-Xception's residual block ``b`` (layers ``{prefix}b{b}_*``): two separable convs and a
    max-pool beside a strided 1x1 residual, added (``{prefix}b{b}_add``)."""
    name = f"{prefix}b{b}"
    if subsample_residual:
        residual = layers.MaxPooling2D(1, strides=2, name=f"{name}_res_subsample")(x)
        residual = layers.Conv2D(width, 1, use_bias=False, name=f"{name}_res_conv")(residual)
    else:
        residual = layers.Conv2D(width, 1, strides=2, padding="same", use_bias=False, name=f"{name}_res_conv")(x)
    residual = layers.BatchNormalization(name=f"{name}_res_bn")(residual)
    x = layers.SeparableConv2D(width, 3, padding="same", use_bias=False, name=f"{name}_sep1")(x)
    x = layers.BatchNormalization(name=f"{name}_bn1")(x)
    x = layers.ReLU(name=f"{name}_relu")(x)
    x = layers.SeparableConv2D(width, 3, padding="same", use_bias=False, name=f"{name}_sep2")(x)
    x = layers.BatchNormalization(name=f"{name}_bn2")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_pool")(x)
    return layers.Add(name=f"{name}_add")([x, residual])


def class_head(x, num_classes: int, prefix: str = "", output_name: str = "predictions"):
    """The class convolution, global average pooling and softmax (layers ``{prefix}class_conv``, ...)."""
    x = layers.Conv2D(num_classes, 3, padding="same", name=f"{prefix}class_conv")(x)
    x = layers.GlobalAveragePooling2D(name=f"{prefix}gap")(x)
    return layers.Softmax(name=output_name)(x)


def mini_xception(
    input_shape: tuple[int, int, int] = (64, 64, 1),
    num_classes: int = 7,
    l2: float = 0.01,
    widths: tuple[int, ...] = (16, 32, 64, 128),
    stem: int = 8,
    dropout: float = 0.0,
    subsample_residual: bool = False,
    blur_sigma: float = 0.0,
) -> keras.Model:
    """Build mini-Xception; ``widths`` are the residual blocks' channel counts.

    ``l2`` regularises the two stem convs only: the paper's code passed
    ``kernel_regularizer`` to ``SeparableConv2D``, which Keras ignores there.

    ``subsample_residual`` computes the strided 1x1 residual conv as a 1x1
    max-pool with stride 2 (pure subsampling) followed by a 1x1 conv: the same
    function with the same weights, but it avoids a crash of TensorFlow 2.21's
    oneDNN kernel for strided 1x1 convs on inputs larger than ~56x56 during
    training. :func:`canonical_copy` turns it back into the paper's graph.
    """
    reg = regularizers.l2(l2) if l2 > 0 else None
    inputs = keras.Input(shape=input_shape, name="face")
    x = input_blur(inputs, blur_sigma) if blur_sigma > 0 else inputs
    for i in range(2):
        x = layers.Conv2D(stem, 3, use_bias=False, kernel_regularizer=reg, name=f"stem_conv{i + 1}")(x)
        x = layers.BatchNormalization(name=f"stem_bn{i + 1}")(x)
        x = layers.ReLU(name=f"stem_relu{i + 1}")(x)
    for b, width in enumerate(widths, start=1):
        x = residual_block(x, b, width, subsample_residual)
    if dropout > 0:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = class_head(x, num_classes)
    return keras.Model(inputs, outputs, name="mini_xception")


def sequential_cnn(
    input_shape: tuple[int, int, int] = (64, 64, 1), num_classes: int = 7, dropout: float = 0.5,
    blur_sigma: float = 0.0,
) -> keras.Model:
    """Build the paper's sequential fully-convolutional CNN."""
    inputs = keras.Input(shape=input_shape, name="face")
    x = input_blur(inputs, blur_sigma) if blur_sigma > 0 else inputs
    for stage, (width, kernel) in enumerate(((16, 7), (32, 5), (64, 3), (128, 3)), start=1):
        x = layers.Conv2D(width, kernel, padding="same", name=f"s{stage}_conv1")(x)
        x = layers.BatchNormalization(name=f"s{stage}_bn1")(x)
        x = layers.Conv2D(width, kernel, padding="same", name=f"s{stage}_conv2")(x)
        x = layers.BatchNormalization(name=f"s{stage}_bn2")(x)
        x = layers.ReLU(name=f"s{stage}_relu")(x)
        x = layers.AveragePooling2D(2, padding="same", name=f"s{stage}_pool")(x)
        x = layers.Dropout(dropout, name=f"s{stage}_dropout")(x)
    x = layers.Conv2D(256, 3, padding="same", name="s5_conv1")(x)
    x = layers.BatchNormalization(name="s5_bn1")(x)
    x = layers.Conv2D(num_classes, 3, padding="same", name="class_conv")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Softmax(name="predictions")(x)
    return keras.Model(inputs, outputs, name="sequential_cnn")


def build_model(name: str, input_shape: tuple[int, int, int], num_classes: int, **kwargs) -> keras.Model:
    """Build an architecture by name (``mini_xception`` or ``sequential_cnn``)."""
    if name == "mini_xception":
        return mini_xception(input_shape, num_classes, **kwargs)
    if name == "sequential_cnn":
        return sequential_cnn(input_shape, num_classes, **kwargs)
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(ARCHITECTURES)}")
