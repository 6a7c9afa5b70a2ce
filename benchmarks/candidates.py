"""Candidate speedups of dmr's train steps on XLA:CPU, measured by train_throughput.py beside dmr.

Each is a way to build the same step differently without editing dmr; none changes the results
beyond float rounding. Neither has paid off so far (dmr/models/convs.py holds the ones that did):

- `gemm_kernel_gradients()`: while a step is traced, every stride-1 VALID NHWC conv left to
  lax.conv_general_dilated (dmr.models.convs uses it for 2x2-tap kernels: the classifier's and the
  encoder's) has its kernel gradient computed as the patches' matrix product with the output
  gradient (a custom VJP); its forward and input gradient stay as they are.
- `ignore_mask(model)`: BatchNorm without the padding mask (`mask=None`): every batch of the
  benchmark is full, so the step could pass the mask only when a batch has padding rows.
"""
from __future__ import annotations

import contextlib
import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from dmr.models import convs

_LAX_CONV = jax.lax.conv_general_dilated
_NHWC = ("NHWC", "HWIO", "NHWC")


def _is_plain(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
              feature_group_count, batch_group_count) -> bool:
  """True for a stride-1, undilated, ungrouped, unpadded NHWC/HWIO conv."""
  valid = padding == "VALID" or (not isinstance(padding, str)
                                 and all(tuple(p) == (0, 0) for p in padding))
  ones = lambda values: values is None or all(v == 1 for v in values)
  layout = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
  return (lhs.ndim == 4 and valid and ones(window_strides) and ones(lhs_dilation)
          and ones(rhs_dilation) and feature_group_count == 1 and batch_group_count == 1
          and layout == jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC))


def _lax_valid_conv(x, kernel):
  return _LAX_CONV(x, kernel, (1, 1), "VALID", dimension_numbers=_NHWC)


@jax.custom_vjp
def gemm_kernel_gradient_conv(x, kernel):
  """A stride-1 VALID NHWC/HWIO conv whose kernel gradient is a matrix product."""
  return _lax_valid_conv(x, kernel)


def _forward(x, kernel):
  return _lax_valid_conv(x, kernel), (x, kernel)


def _backward(residuals, g):
  x, kernel = residuals
  kh, kw, channels, features = kernel.shape
  dx = jax.vjp(lambda x: _lax_valid_conv(x, kernel), x)[1](g)[0]
  dkernel = jnp.einsum("bhwk,bhwo->ko", convs.patches(x, kh, kw), g)
  return dx, dkernel.reshape((kh, kw, channels, features))


gemm_kernel_gradient_conv.defvjp(_forward, _backward)


def _replacing_plain_convs(plain_conv):
  """lax.conv_general_dilated, with plain_conv(x, kernel) for stride-1 VALID NHWC convs."""

  def conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
           dimension_numbers=None, feature_group_count=1, batch_group_count=1, precision=None,
           preferred_element_type=None):
    if _is_plain(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                 dimension_numbers, feature_group_count, batch_group_count):
      return plain_conv(lhs, rhs)
    return _LAX_CONV(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                     dimension_numbers, feature_group_count, batch_group_count, precision,
                     preferred_element_type)

  return conv


@contextlib.contextmanager
def gemm_kernel_gradients():
  """Within the block, plain lax convs are `gemm_kernel_gradient_conv` (trace a step inside it)."""
  jax.lax.conv_general_dilated = _replacing_plain_convs(gemm_kernel_gradient_conv)
  try:
    yield
  finally:
    jax.lax.conv_general_dilated = _LAX_CONV


@dataclasses.dataclass(frozen=True)
class ignore_mask:  # noqa: N801 (used like a function)
  """`model` whose apply drops the `mask` argument (BatchNorm over the whole batch)."""
  model: nn.Module

  def apply(self, variables, x, mask=None, **kwargs):
    del mask
    return self.model.apply(variables, x, **kwargs)

  def __getattr__(self, name):
    return getattr(self.model, name)
