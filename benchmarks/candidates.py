"""Candidate speedups of dmr's train steps on XLA:CPU, measured by train_throughput.py beside dmr.

Each is a way to build the same step differently without editing dmr; none changes the results
beyond float rounding. They are prototypes for changes to dmr/models and dmr/train:

- `im2col_convs()`: while a step is traced, every stride-1 VALID NHWC conv (all of dmr's convs
  after space-to-depth / phase decomposition) is computed as a matrix product of its patches
  (kh * kw shifted slices concatenated on the channel axis) with the kernel reshaped
  [kh * kw * C, O]. Autodiff then gives matrix products for the kernel and input gradients too;
  XLA:CPU computes a conv's kernel gradient as a conv whose window is the whole output map
  (7x7 in the discriminator), several times slower than the same product as a GEMM.
- `ignore_mask(model)`: BatchNorm without the padding mask (`mask=None`): every batch of the
  benchmark is full, so the step could pass the mask only when a batch has padding rows.
"""
from __future__ import annotations

import contextlib
import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

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


def im2col_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                precision=None, preferred_element_type=None):
  """lax.conv_general_dilated, as patches @ kernel for plain stride-1 VALID NHWC convs."""
  if not _is_plain(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                   dimension_numbers, feature_group_count, batch_group_count):
    return _LAX_CONV(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                     dimension_numbers, feature_group_count, batch_group_count, precision,
                     preferred_element_type)
  kh, kw, channels, features = rhs.shape
  rows, cols = lhs.shape[1] - kh + 1, lhs.shape[2] - kw + 1
  patches = jnp.concatenate([lhs[:, i:i + rows, j:j + cols, :] for i in range(kh)
                             for j in range(kw)], axis=-1)
  return jnp.dot(patches, rhs.reshape((kh * kw * channels, features)), precision=precision)


@contextlib.contextmanager
def im2col_convs():
  """Within the block, jax.lax.conv_general_dilated is `im2col_conv` (trace a step inside it)."""
  jax.lax.conv_general_dilated = im2col_conv
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
