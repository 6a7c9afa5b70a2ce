"""The paper's VAE-GAN (docs/protocol.md#vae-gan): encoder, decoder and discriminator as flax modules.

All take `train` (BatchNorm on batch statistics, updating `batch_stats`) and an optional `mask` [B]
of the real rows of a padded batch. Sizes follow the classifier's conv stack: 28x28 images are
coded down to 3x3 by three strided convs and decoded back up by three transposed convs; 56x48
images by four.
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from dmr.models import convs
from dmr.models.classifiers import ConvClassifier
from dmr.models.layers import (conv_bn_relu_stack, conv_stack_sizes, lecun_normal_2d,
                               masked_batch_norm)

ENCODER_KERNEL = 4
DISCRIMINATOR_KERNEL = 6


class Encoder(nn.Module):
  """The classifier's conv stack (kernel 4, `channels` doubling), then Dense heads.

  x [B, H, W, C] in [0, 1] -> (mu [B, latent_dim], log_var [B, latent_dim]) of q(z | x).
  """
  latent_dim: int = 10
  channels: int = 64

  @nn.compact
  def __call__(self, x, train: bool = False, mask=None):
    h = conv_bn_relu_stack(x, self.channels, ENCODER_KERNEL, train, mask)
    h = h.reshape((h.shape[0], -1))
    return nn.Dense(self.latent_dim, name="mu")(h), nn.Dense(self.latent_dim, name="log_var")(h)


class Decoder(nn.Module):
  """Dense(z -> the encoder's last feature map), then transposed convs (kernel 6, stride 2) back
  through the encoder's sizes, BN + ReLU between them, sigmoid output.

  z [B, latent_dim] -> images [B, *image_shape] in (0, 1). Each transposed conv doubles the size,
  plus one row/column where the encoder's conv floored an odd size (3 -> 7), as PyTorch's
  ConvTranspose2d(6, stride=2, padding=2, output_padding) does in the paper's code.
  """
  image_shape: tuple[int, int, int] = (28, 28, 1)
  channels: int = 64

  @nn.compact
  def __call__(self, z, train: bool = False, mask=None):
    height, width, image_channels = self.image_shape
    sizes = conv_stack_sizes(height, width, ENCODER_KERNEL)
    depth = len(sizes) - 1
    (h0, w0), top_channels = sizes[-1], self.channels * 2**(depth - 1)
    x = nn.Dense(h0 * w0 * top_channels)(z).reshape((-1, h0, w0, top_channels))
    for i in reversed(range(depth)):
      last = i == 0
      features = image_channels if last else self.channels * 2**(i - 1)
      x = TransposedConv(features, target=sizes[i], use_bias=last)(x)
      if not last:
        x = nn.relu(masked_batch_norm(x, train, mask))
    return nn.sigmoid(x)


class TransposedConv(nn.Module):
  """Transposed conv, kernel 6, stride 2, as PyTorch's ConvTranspose2d(6, stride=2, padding=2,
  output_padding=target - 2 * size): [B, h, w, C] -> [B, *target, features], target in
  {2h, 2h + 1} x {2w, 2w + 1}.

  Output row 2m + a (phase a in {0, 1}) sums rows m - 1, m, m + 1 of the input against kernel
  taps a, a + 2, a + 4, so the layer is computed exactly as a 3x3 conv to 4 * features phase
  channels followed by interleaving the phases (depth-to-space): XLA:CPU computes the kernel
  gradient of lax.conv_transpose about 50x slower than that of a plain conv.
  """
  features: int
  target: tuple[int, int]
  use_bias: bool = True

  @nn.compact
  def __call__(self, x):
    batch, height, width, _ = x.shape
    extra = [t - 2 * s for t, s in zip(self.target, (height, width))]
    if not all(e in (0, 1) for e in extra):
      raise ValueError(f"cannot upsample {(height, width)} to {self.target} with stride 2.")
    # Padded explicitly: XLA:CPU's kernel gradient of a conv with uneven padding is 30x slower.
    x = jnp.pad(x, ((0, 0), (1, 1 + extra[0]), (1, 1 + extra[1]), (0, 0)))
    phases = nn.Conv(4 * self.features, (3, 3), padding="VALID", use_bias=False,
                     kernel_init=lecun_normal_2d,
                     conv_general_dilated=convs.conv_general_dilated)(x)
    rows, cols = phases.shape[1:3]
    x = phases.reshape((batch, rows, cols, 2, 2, self.features)).transpose((0, 1, 3, 2, 4, 5))
    x = x.reshape((batch, 2 * rows, 2 * cols, self.features))[:, :self.target[0], :self.target[1]]
    if self.use_bias:
      x = x + self.param("bias", nn.initializers.zeros_init(), (self.features,))
    return x


def make_discriminator(channels: int = 64) -> nn.Module:
  """The classifier architecture with kernel 6 and one logit: images [B, H, W, C] -> [B, 1]."""
  return ConvClassifier(num_classes=1, channels=channels, kernel=DISCRIMINATOR_KERNEL)


@dataclasses.dataclass(frozen=True)
class VAEGAN:
  """The three networks of one VAE-GAN (hashable: equal settings give equal objects)."""
  encoder: Encoder
  decoder: Decoder
  discriminator: nn.Module


def make_vaegan(image_shape: tuple[int, int, int], latent_dim: int = 10, channels: int = 64,
                discriminator_channels: int = 64) -> VAEGAN:
  return VAEGAN(Encoder(latent_dim, channels), Decoder(tuple(image_shape), channels),
                make_discriminator(discriminator_channels))


@dataclasses.dataclass(frozen=True)
class _EncodeMean:
  encoder: Encoder

  def __call__(self, variables, x):
    return self.encoder.apply(variables, x)[0]


@dataclasses.dataclass(frozen=True)
class _Decode:
  decoder: Decoder

  def __call__(self, variables, z):
    return self.decoder.apply(variables, z)


def make_encode_fn(encoder: Encoder, variables: dict) -> jax.tree_util.Partial:
  """encode_fn(x [B, H, W, C]) -> mu [B, d], BatchNorm in inference mode.

  A jax.tree_util.Partial whose variables are pytree leaves, so a jitted function taking it as an
  argument compiles once for every model of the same architecture.
  """
  return jax.tree_util.Partial(_EncodeMean(encoder), variables)


def make_decode_fn(decoder: Decoder, variables: dict) -> jax.tree_util.Partial:
  """decode_fn(z [B, d]) -> images [B, H, W, C], BatchNorm in inference mode (see make_encode_fn).
  """
  return jax.tree_util.Partial(_Decode(decoder), variables)
