"""The paper's classifiers (PAPER.md, "Classifier") as flax.linen modules.

Every classifier maps images [B, H, W, C] in [0, 1] to logits [B, K] and takes
`train` (BatchNorm uses batch statistics and updates `batch_stats`) and an optional
`mask` [B] of the real rows of a padded batch, which BatchNorm statistics ignore.
"""
from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

# PyTorch's BatchNorm defaults (momentum 0.1 there is 0.9 here), as the paper's code used.
BatchNorm = functools.partial(nn.BatchNorm, momentum=0.9, epsilon=1e-5)


def _bn(x, train: bool, mask):
  """BatchNorm over all axes but the last, restricted to the rows where mask [B] is true."""
  if mask is not None:
    mask = jnp.broadcast_to(mask.reshape((-1,) + (1,) * (x.ndim - 1)).astype(bool), x.shape)
  return BatchNorm(use_running_average=not train)(x, mask=mask)


def conv_stack_depth(height: int, width: int, kernel: int = 4, stride: int = 2,
                     padding: int = 1) -> int:
  """Number of strided convs applied while the spatial size stays >= 4 (PAPER.md).

  28x28 -> 3 (28->14->7->3), 56x48 -> 4 (56x48->28x24->14x12->7x6->3x3).
  """
  depth, size = 0, min(height, width)
  while size >= 4:
    size = (size + 2 * padding - kernel) // stride + 1
    depth += 1
  return depth


class ConvClassifier(nn.Module):
  """Conv(k4, s2, p1) -> BN -> ReLU, channels 16, 32, ..., then Linear(10K) -> Linear(K).

  The two linear layers have no nonlinearity between them, as in the paper's code. The convs
  have no bias: BatchNorm subtracts it right away, so it would only be a parameter whose
  gradient is rounding noise (which Adam's normalization turns into lr-sized steps).
  """
  num_classes: int = 10
  channels: int = 16
  kernel: int = 4

  @nn.compact
  def __call__(self, x, train: bool = False, mask=None):
    depth = conv_stack_depth(x.shape[1], x.shape[2], self.kernel)
    for i in range(depth):
      x = nn.Conv(self.channels * 2**i, (self.kernel, self.kernel), strides=2,
                  padding=((1, 1), (1, 1)), use_bias=False)(x)
      x = nn.relu(_bn(x, train, mask))
    x = x.reshape((x.shape[0], -1))
    x = nn.Dense(10 * self.num_classes)(x)
    return nn.Dense(self.num_classes)(x)


class MLPClassifier(nn.Module):
  """Linear -> ReLU -> BN, `units` per hidden layer, then Linear(K)."""
  num_classes: int = 10
  units: Sequence[int] = (128, 128, 128, 128)

  @nn.compact
  def __call__(self, x, train: bool = False, mask=None):
    x = x.reshape((x.shape[0], -1))
    for width in self.units:
      x = _bn(nn.relu(nn.Dense(width)(x)), train, mask)
    return nn.Dense(self.num_classes)(x)


class ResidualBlock(nn.Module):
  """Two 3x3 convs with BN; a 1x1 projection on the shortcut when the shape changes."""
  channels: int
  stride: int = 1

  @nn.compact
  def __call__(self, x, train: bool, mask):
    y = nn.Conv(self.channels, (3, 3), strides=self.stride, padding=1, use_bias=False)(x)
    y = nn.relu(_bn(y, train, mask))
    y = nn.Conv(self.channels, (3, 3), padding=1, use_bias=False)(y)
    y = _bn(y, train, mask)
    if x.shape != y.shape:
      x = nn.Conv(self.channels, (1, 1), strides=self.stride, use_bias=False)(x)
      x = _bn(x, train, mask)
    return nn.relu(x + y)


class ResNetClassifier(nn.Module):
  """ResNet with `stages` blocks per stage, channels doubling from `channels`, stride 2 per stage."""
  num_classes: int = 10
  stages: Sequence[int] = (2, 2, 2)
  channels: int = 64

  @nn.compact
  def __call__(self, x, train: bool = False, mask=None):
    x = nn.Conv(self.channels, (3, 3), padding=1, use_bias=False)(x)
    x = nn.relu(_bn(x, train, mask))
    for stage, blocks in enumerate(self.stages):
      for block in range(blocks):
        stride = 2 if stage > 0 and block == 0 else 1
        x = ResidualBlock(self.channels * 2**stage, stride)(x, train, mask)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes)(x)


class VGGClassifier(nn.Module):
  """3x3 convs with BN and ReLU, max-pooling after each, then FC 1024, 1024, K."""
  num_classes: int = 10
  channels: Sequence[int] = (64, 128, 128, 256, 256)
  hidden: Sequence[int] = (1024, 1024)

  @nn.compact
  def __call__(self, x, train: bool = False, mask=None):
    for width in self.channels:
      x = nn.relu(_bn(nn.Conv(width, (3, 3), padding=1, use_bias=False)(x), train, mask))
      if min(x.shape[1:3]) >= 2:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    for width in self.hidden:
      x = nn.relu(nn.Dense(width)(x))
    return nn.Dense(self.num_classes)(x)


ARCHITECTURES = {
    "conv": ConvClassifier,
    "mlp": MLPClassifier,
    "resnet": ResNetClassifier,
    "vgg": VGGClassifier,
}


def make_classifier(architecture: str, num_classes: int, **kwargs) -> nn.Module:
  """The classifier named `architecture` (one of ARCHITECTURES) with K = num_classes."""
  if architecture not in ARCHITECTURES:
    raise ValueError(f"classifier.architecture={architecture!r}; allowed: {sorted(ARCHITECTURES)}.")
  return ARCHITECTURES[architecture](num_classes=num_classes, **kwargs)
