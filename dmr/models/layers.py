"""Blocks shared by the classifiers and the VAE-GAN: masked BatchNorm, the strided conv stack.

Helpers that create flax submodules are called from inside a parent's `nn.compact` method, so the
submodules are named by the parent (Conv_0, BatchNorm_0, ...) as if written there.
"""
from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from dmr.models import convs

# PyTorch's BatchNorm defaults (momentum 0.1 there is 0.9 here), as the paper's code used.
BatchNorm = functools.partial(nn.BatchNorm, momentum=0.9, epsilon=1e-5)


def masked_batch_norm(x, train: bool, mask):
  """BatchNorm over all axes but the last, restricted to the rows where mask [B] is true."""
  if mask is not None:
    mask = jnp.broadcast_to(mask.reshape((-1,) + (1,) * (x.ndim - 1)).astype(bool), x.shape)
  return BatchNorm(use_running_average=not train)(x, mask=mask)


def same_padding(kernel: int) -> int:
  """The paper's padding of a stride-2 conv with an even kernel: kernel / 2 - 1 (4 -> 1, 6 -> 2),
  which halves every even size exactly."""
  return kernel // 2 - 1


def conv_stack_sizes(height: int, width: int, kernel: int = 4,
                     stride: int = 2) -> list[tuple[int, int]]:
  """Spatial sizes [(H, W), ...] of the input and after each strided conv, applied while the
  smaller side stays >= 4 (docs/protocol.md#classifiers).

  28x28 -> 28x28, 14x14, 7x7, 3x3; 56x48 -> 56x48, 28x24, 14x12, 7x6, 3x3.
  """
  padding = same_padding(kernel)
  sizes = [(height, width)]
  while min(sizes[-1]) >= 4:
    sizes.append(tuple((s + 2 * padding - kernel) // stride + 1 for s in sizes[-1]))
  return sizes


def conv_stack_depth(height: int, width: int, kernel: int = 4, stride: int = 2) -> int:
  """Number of strided convs of the paper's conv stack: 28x28 -> 3, 56x48 -> 4."""
  return len(conv_stack_sizes(height, width, kernel, stride)) - 1


def drawn_as_matrix(init: nn.initializers.Initializer) -> nn.initializers.Initializer:
  """`init` (fan_in = all axes but the last) drawn as a [fan_in, features] matrix and reshaped:
  XLA:CPU compiles a random draw of rank >= 3 (with the default partitionable threefry) 10x
  slower, seconds per conv kernel."""

  def draw(key, shape, dtype=jnp.float32):
    return init(key, (math.prod(shape[:-1]), shape[-1]), dtype).reshape(shape)

  return draw


# flax's default kernel init: truncated normal, variance 1 / fan_in.
lecun_normal_2d = drawn_as_matrix(nn.initializers.lecun_normal())

# The authors' classifier init, PyTorch's kaiming_normal_(w, sqrt(2)): the sqrt(2) there is the
# leaky-ReLU slope a, so the gain is sqrt(2 / (1 + a^2)) and w ~ N(0, (2/3) / fan_in).
AUTHORS_GAIN_SQUARED = 2 / 3
authors_kaiming_normal = drawn_as_matrix(
    nn.initializers.variance_scaling(AUTHORS_GAIN_SQUARED, "fan_in", "normal"))

# kaiming_normal_(w, nonlinearity="relu"): N(0, 2 / fan_in), the authors' VGG linear layers.
he_normal = drawn_as_matrix(nn.initializers.variance_scaling(2.0, "fan_in", "normal"))


def he_normal_fan_out(key, shape, dtype=jnp.float32):
  """kaiming_normal_(w, mode="fan_out", nonlinearity="relu") of a conv kernel [kh, kw, C, F]:
  N(0, 2 / (kh kw F)), the authors' ResNet and VGG convs (drawn as a matrix, see above)."""
  fan_out = math.prod(shape[:-2]) * shape[-1]
  std = math.sqrt(2.0 / fan_out)
  return (std * jax.random.normal(key, (math.prod(shape[:-1]), shape[-1]), dtype)).reshape(shape)


class StridedConv(nn.Module):
  """nn.Conv(features, (kernel, kernel), strides=2, padding=kernel/2 - 1, use_bias=False), with
  the same parameter ("kernel" [kernel, kernel, C, features]) and initial distribution.

  Computed by convs.strided_conv: space-to-depth (2x2 blocks to 4C channels) and a stride-1 conv
  with kernel/2 taps, the same sums. XLA:CPU computes the input gradient of a strided conv whose
  windows leave a row unused (7 -> 3) 20-50x slower than this.
  """
  features: int
  kernel: int = 4
  kernel_init: nn.initializers.Initializer = lecun_normal_2d

  @nn.compact
  def __call__(self, x):
    k, pad = self.kernel, same_padding(self.kernel)
    weights = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features))
    return convs.strided_conv(x, weights, (2, 2), ((pad, pad), (pad, pad)))


def conv_bn_relu_stack(x, channels: int, kernel: int, train: bool, mask,
                       kernel_init: nn.initializers.Initializer = lecun_normal_2d):
  """Conv(kernel, stride 2, padding kernel/2 - 1) -> BN -> ReLU while the size stays >= 4, with
  channels, 2 * channels, ... x [B, H, W, C] -> [B, 3, 3, channels * 2**(depth - 1)] (28x28).

  The convs have no bias: BatchNorm subtracts it right away, so it would only be a parameter
  whose gradient is rounding noise (which Adam's normalization turns into lr-sized steps).
  """
  for i in range(conv_stack_depth(x.shape[1], x.shape[2], kernel)):
    x = StridedConv(channels * 2**i, kernel, kernel_init, name=f"Conv_{i}")(x)
    x = nn.relu(masked_batch_norm(x, train, mask))
  return x
