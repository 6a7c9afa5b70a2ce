"""The paper's classifiers (docs/protocol.md#classifiers) as flax.linen modules.

Every classifier maps images [B, H, W, C] in [0, 1] to logits [B, K] and takes
`train` (BatchNorm uses batch statistics and updates `batch_stats`) and an optional
`mask` [B] of the real rows of a padded batch, which BatchNorm statistics ignore.
Weights are initialized as in the authors' code (dmr.models.layers), biases with 0.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from dmr.models.layers import conv_bn_relu_stack, conv_stack_depth  # noqa: F401 (re-exported)
from dmr.models.layers import authors_kaiming_normal, he_normal, he_normal_fan_out
from dmr.models.layers import masked_batch_norm as _bn


class ConvClassifier(nn.Module):
  """Conv(k, s2, p k/2-1) -> BN -> ReLU, channels 16, 32, ..., then Linear(10K) -> Linear(K).

  The two linear layers have no nonlinearity between them, as in the paper's code. With kernel 6
  and 64 channels it is the VAE-GAN's discriminator (docs/protocol.md#vae-gan).
  """
  num_classes: int = 10
  channels: int = 16
  kernel: int = 4

  @nn.compact
  def __call__(self, x, train: bool = False, mask=None):
    x = conv_bn_relu_stack(x, self.channels, self.kernel, train, mask, authors_kaiming_normal)
    x = x.reshape((x.shape[0], -1))
    x = nn.Dense(10 * self.num_classes, kernel_init=authors_kaiming_normal)(x)
    return nn.Dense(self.num_classes, kernel_init=authors_kaiming_normal)(x)


class MLPClassifier(nn.Module):
  """Linear -> ReLU -> BN, `units` per hidden layer, then Linear(K)."""
  num_classes: int = 10
  units: Sequence[int] = (128, 128, 128, 128)

  @nn.compact
  def __call__(self, x, train: bool = False, mask=None):
    x = x.reshape((x.shape[0], -1))
    for width in self.units:
      x = _bn(nn.relu(nn.Dense(width, kernel_init=authors_kaiming_normal)(x)), train, mask)
    return nn.Dense(self.num_classes, kernel_init=authors_kaiming_normal)(x)


def _conv(features: int, kernel: int, stride: int = 1, padding: int = 1) -> nn.Conv:
  """A bias-free conv with the authors' ResNet and VGG init (he_normal_fan_out)."""
  return nn.Conv(features, (kernel, kernel), strides=stride, padding=padding, use_bias=False,
                 kernel_init=he_normal_fan_out)


class ResidualBlock(nn.Module):
  """Two 3x3 convs with BN; a 1x1 projection on the shortcut when the shape changes."""
  channels: int
  stride: int = 1

  @nn.compact
  def __call__(self, x, train: bool, mask):
    y = _conv(self.channels, 3, self.stride)(x)
    y = nn.relu(_bn(y, train, mask))
    y = _conv(self.channels, 3)(y)
    y = _bn(y, train, mask)
    if x.shape != y.shape:
      x = _conv(self.channels, 1, self.stride, padding=0)(x)
      x = _bn(x, train, mask)
    return nn.relu(x + y)


class ResNetClassifier(nn.Module):
  """ResNet with `stages` blocks per stage, channels doubling from `channels`, stride 2 per stage."""
  num_classes: int = 10
  stages: Sequence[int] = (2, 2, 2)
  channels: int = 64

  @nn.compact
  def __call__(self, x, train: bool = False, mask=None):
    x = _conv(self.channels, 3)(x)
    x = nn.relu(_bn(x, train, mask))
    for stage, blocks in enumerate(self.stages):
      for block in range(blocks):
        stride = 2 if stage > 0 and block == 0 else 1
        x = ResidualBlock(self.channels * 2**stage, stride)(x, train, mask)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, kernel_init=authors_kaiming_normal)(x)


class VGGClassifier(nn.Module):
  """3x3 convs with BN and ReLU, max-pooling after each, then FC 1024, 1024, K."""
  num_classes: int = 10
  channels: Sequence[int] = (64, 128, 128, 256, 256)
  hidden: Sequence[int] = (1024, 1024)

  @nn.compact
  def __call__(self, x, train: bool = False, mask=None):
    for width in self.channels:
      x = nn.relu(_bn(_conv(width, 3)(x), train, mask))
      if min(x.shape[1:3]) >= 2:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    for width in self.hidden:
      x = nn.relu(nn.Dense(width, kernel_init=he_normal)(x))
    return nn.Dense(self.num_classes, kernel_init=he_normal)(x)


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
