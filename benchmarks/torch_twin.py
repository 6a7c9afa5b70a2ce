"""A PyTorch twin of dmr.models.classifiers.ConvClassifier, with its flax weights copied in exactly.

Used by the side-by-side benchmarks (attacks, training throughput):

  twin = torch_twin.conv_classifier_from_flax(variables, image_shape=(28, 28, 1))
  logits = twin(torch_twin.to_torch_images(x_nhwc))   # == model.apply(variables, x, train=False)

The twin takes NCHW images and flattens the last conv output in NHWC order, as flax does.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dmr.models import layers


class TorchConvClassifier(nn.Module):
  """Conv(k, s2, p k/2-1) -> BN -> ReLU stack, then Linear(10K) -> Linear(K); NCHW input."""

  def __init__(self, image_shape, num_classes: int = 10, channels: int = 16, kernel: int = 4,
               conv_bias: bool = False):
    super().__init__()
    height, width, in_channels = image_shape
    sizes = layers.conv_stack_sizes(height, width, kernel)
    stack = []
    for i in range(len(sizes) - 1):
      out_channels = channels * 2**i
      stack += [nn.Conv2d(in_channels, out_channels, kernel, stride=2,
                          padding=layers.same_padding(kernel), bias=conv_bias),
                nn.BatchNorm2d(out_channels, eps=1e-5, momentum=0.1), nn.ReLU()]
      in_channels = out_channels
    self.features = nn.Sequential(*stack)
    self.hidden = nn.Linear(sizes[-1][0] * sizes[-1][1] * in_channels, 10 * num_classes)
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
