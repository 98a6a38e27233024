"""The two OpenFace operations Keras lacks, as named layers instead of Lambdas (savable, exportable)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="facestream")
class LRN(keras.layers.Layer):
    """tf.nn.local_response_normalization with Keras-OpenFace's settings (radius 5, bias 1)."""

    def __init__(
        self, alpha: float = 1e-4, beta: float = 0.75, radius: int = 5, bias: float = 1.0, **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.alpha, self.beta, self.radius, self.bias = alpha, beta, radius, bias

    def call(self, inputs: Any) -> Any:
        import tensorflow as tf  # OpenFace's LRN exists only as a TensorFlow op

        return tf.nn.local_response_normalization(
            inputs, depth_radius=self.radius, bias=self.bias, alpha=self.alpha, beta=self.beta
        )

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "beta": self.beta,
            "radius": self.radius,
            "bias": self.bias,
        }


@keras.saving.register_keras_serializable(package="facestream")
class L2Pool(keras.layers.Layer):
    """sqrt(sum of squares) over each window, as OpenFace's x**2 -> average pool -> *k*k -> sqrt.

    The floor under the square root keeps the gradient finite on all-zero windows.
    """

    def __init__(self, pool: int = 3, stride: int = 3, **kwargs: Any):
        super().__init__(**kwargs)
        self.pool, self.stride = pool, stride

    def call(self, inputs: Any) -> Any:
        mean_sq = ops.average_pool(ops.square(inputs), self.pool, self.stride, padding="valid")
        return ops.sqrt(ops.maximum(mean_sq * float(self.pool * self.pool), 1e-12))

    def compute_output_shape(self, input_shape: tuple[Any, ...]) -> tuple[Any, ...]:
        n, h, w, c = input_shape
        size = [None if d is None else (d - self.pool) // self.stride + 1 for d in (h, w)]
        return (n, size[0], size[1], c)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pool": self.pool, "stride": self.stride}
