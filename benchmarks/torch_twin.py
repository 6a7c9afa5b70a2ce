"""PyTorch twins of dmr's models for the side-by-side benchmarks (attacks, training throughput).

The classifier twin takes dmr.models.classifiers.ConvClassifier's flax weights exactly:

  twin = torch_twin.conv_classifier_from_flax(variables, image_shape=(28, 28, 1))
  logits = twin(torch_twin.to_torch_images(x_nhwc))   # == model.apply(variables, x, train=False)

It takes NCHW images and flattens the last conv output in NHWC order, as flax does. The VAE-GAN
twin (`TorchVAEGAN`, `vaegan_loss`) has dmr.models.vaegan's layers and dmr.train.vaegan's losses
(for throughput: its weights are its own initialization).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dmr.models import layers


def conv_stack(image_shape, channels: int, kernel: int, conv_bias: bool = False):
  """(Conv(k, s2, p k/2-1) -> BN -> ReLU while the size stays >= 4, flattened size of its output)."""
  height, width, in_channels = image_shape
  sizes = layers.conv_stack_sizes(height, width, kernel)
  stack = []
  for i in range(len(sizes) - 1):
    out_channels = channels * 2**i
    stack += [nn.Conv2d(in_channels, out_channels, kernel, stride=2,
                        padding=layers.same_padding(kernel), bias=conv_bias),
              nn.BatchNorm2d(out_channels, eps=1e-5, momentum=0.1), nn.ReLU()]
    in_channels = out_channels
  return nn.Sequential(*stack), sizes[-1][0] * sizes[-1][1] * in_channels


class TorchConvClassifier(nn.Module):
  """Conv(k, s2, p k/2-1) -> BN -> ReLU stack, then Linear(10K) -> Linear(K); NCHW input."""

  def __init__(self, image_shape, num_classes: int = 10, channels: int = 16, kernel: int = 4,
               conv_bias: bool = False):
    super().__init__()
    self.features, flat = conv_stack(image_shape, channels, kernel, conv_bias)
    self.hidden = nn.Linear(flat, 10 * num_classes)
    self.out = nn.Linear(10 * num_classes, num_classes)

  def forward(self, x):
    x = self.features(x)
    x = x.permute(0, 2, 3, 1).flatten(1)   # flax flattens NHWC
    return self.out(self.hidden(x))


def _tensor(a) -> torch.Tensor:
  return torch.from_numpy(np.array(a, dtype=np.float32))


def conv_classifier_from_flax(variables, image_shape, num_classes: int = 10,
                              channels: int = 16, kernel: int = 4) -> TorchConvClassifier:
  """The twin in eval mode with the flax `variables` ({'params', 'batch_stats'}) copied in."""
  params, stats = variables["params"], variables["batch_stats"]
  twin = TorchConvClassifier(image_shape, num_classes, channels, kernel,
                             conv_bias="bias" in params["Conv_0"])
  convs = [m for m in twin.features if isinstance(m, nn.Conv2d)]
  norms = [m for m in twin.features if isinstance(m, nn.BatchNorm2d)]
  with torch.no_grad():
    for i, (conv, norm) in enumerate(zip(convs, norms)):
      conv.weight.copy_(_tensor(params[f"Conv_{i}"]["kernel"]).permute(3, 2, 0, 1))  # HWIO->OIHW
      if conv.bias is not None:
        conv.bias.copy_(_tensor(params[f"Conv_{i}"]["bias"]))
      norm.weight.copy_(_tensor(params[f"BatchNorm_{i}"]["scale"]))
      norm.bias.copy_(_tensor(params[f"BatchNorm_{i}"]["bias"]))
      norm.running_mean.copy_(_tensor(stats[f"BatchNorm_{i}"]["mean"]))
      norm.running_var.copy_(_tensor(stats[f"BatchNorm_{i}"]["var"]))
    for linear, name in ((twin.hidden, "Dense_0"), (twin.out, "Dense_1")):
      linear.weight.copy_(_tensor(params[name]["kernel"]).T)
      linear.bias.copy_(_tensor(params[name]["bias"]))
  return twin.eval()


def to_torch_images(x_nhwc) -> torch.Tensor:
  """float32 NHWC array -> contiguous NCHW torch tensor."""
  return _tensor(x_nhwc).permute(0, 3, 1, 2).contiguous()


class TorchEncoder(nn.Module):
  """dmr.models.vaegan.Encoder: the conv stack (kernel 4), then Linear heads mu, log_var."""

  def __init__(self, image_shape, latent_dim: int = 10, channels: int = 64):
    super().__init__()
    self.features, flat = conv_stack(image_shape, channels, 4)
    self.mu, self.log_var = nn.Linear(flat, latent_dim), nn.Linear(flat, latent_dim)

  def forward(self, x):
    h = self.features(x).permute(0, 2, 3, 1).flatten(1)
    return self.mu(h), self.log_var(h)


class TorchDecoder(nn.Module):
  """dmr.models.vaegan.Decoder: Linear to the encoder's last map, ConvTranspose2d(6, s2, p2) back
  through the encoder's sizes (BN + ReLU between), sigmoid."""

  def __init__(self, image_shape, latent_dim: int = 10, channels: int = 64):
    super().__init__()
    height, width, image_channels = image_shape
    sizes = layers.conv_stack_sizes(height, width, 4)
    depth = len(sizes) - 1
    self.top = (channels * 2**(depth - 1),) + sizes[-1]
    self.dense = nn.Linear(latent_dim, self.top[0] * sizes[-1][0] * sizes[-1][1])
    stack, in_channels = [], self.top[0]
    for i in reversed(range(depth)):
      last = i == 0
      out_channels = image_channels if last else channels * 2**(i - 1)
      extra = [t - 2 * s for t, s in zip(sizes[i], sizes[i + 1])]
      stack.append(nn.ConvTranspose2d(in_channels, out_channels, 6, stride=2, padding=2,
                                      output_padding=tuple(extra), bias=last))
      if not last:
        stack += [nn.BatchNorm2d(out_channels, eps=1e-5, momentum=0.1), nn.ReLU()]
      in_channels = out_channels
    self.stack = nn.Sequential(*stack)

  def forward(self, z):
    return torch.sigmoid(self.stack(self.dense(z).view(-1, *self.top)))


class TorchVAEGAN(nn.Module):
  """Encoder, decoder (64 channels) and discriminator (the classifier, kernel 6, one logit)."""

  def __init__(self, image_shape, latent_dim: int = 10, channels: int = 64,
               discriminator_channels: int = 64):
    super().__init__()
    self.encoder = TorchEncoder(image_shape, latent_dim, channels)
    self.decoder = TorchDecoder(image_shape, latent_dim, channels)
    self.discriminator = TorchConvClassifier(image_shape, 1, discriminator_channels, 6)


def vaegan_loss(nets: TorchVAEGAN, x: torch.Tensor, beta: float, gamma: float) -> torch.Tensor:
  """dmr.train.vaegan's objective: encoder loss (discriminator held fixed) + gamma times the
  discriminator's loss (reconstructions held fixed), summed over the batch; one backward pass of
  it gives the three networks' gradients. x [B, C, H, W]."""
  bce = nn.functional.binary_cross_entropy_with_logits
  mu, log_var = nets.encoder(x)
  x_rec = nets.decoder(mu + torch.exp(0.5 * log_var) * torch.randn_like(mu))
  fixed = ({k: v.detach() for k, v in nets.discriminator.named_parameters()},
           {k: v.clone() for k, v in nets.discriminator.named_buffers()})
  fooled = torch.func.functional_call(nets.discriminator, fixed, (x_rec,))[:, 0]
  real = nets.discriminator(x)[:, 0]
  fake = nets.discriminator(x_rec.detach())[:, 0]
  kl = -0.5 * torch.sum(1.0 + log_var - mu**2 - torch.exp(log_var))
  l1 = torch.sum(torch.abs(x - x_rec))
  gan = bce(fooled, torch.ones_like(fooled), reduction="sum")
  discriminator = (bce(real, torch.ones_like(real), reduction="sum")
                   + bce(fake, torch.zeros_like(fake), reduction="sum"))
  return kl + beta * l1 + gamma * gan + gamma * discriminator
