"""Candidate speedups of dmr's train steps on XLA:CPU, measured by train_throughput.py beside dmr.

Each is a way to build the same step differently without editing dmr; none changes the results
beyond float rounding. They are prototypes for changes to dmr/models and dmr/train:

- `im2col_convs()`: while a step is traced, every stride-1 VALID NHWC conv (all of dmr's convs
  after space-to-depth / phase decomposition) is computed as a matrix product of its patches
  (kh * kw shifted slices concatenated on the channel axis) with the kernel reshaped
  [kh * kw * C, O]. Autodiff then gives matrix products for the kernel and input gradients too;
  XLA:CPU computes a conv's kernel gradient as a conv whose window is the whole output map
  (7x7 in the discriminator), several times slower than the same product as a GEMM.
- `gemm_kernel_gradients()`: the same convs keep XLA's conv forward and input gradient; only the
  kernel gradient is the patches' matrix product with the output gradient (a custom VJP).
- `hwio_input_gradients()`: XLA's conv forward and kernel gradient; the input gradient convolves
  the padded output gradient with the flipped kernel materialized in HWIO layout. Inside a
  lax.while_loop (dmr's default attack loop) XLA:CPU otherwise runs the input-gradient conv with
  an OI-swapped kernel layout about 7x slower than the same conv outside a loop.
- `ignore_mask(model)`: BatchNorm without the padding mask (`mask=None`): every batch of the
  benchmark is full, so the step could pass the mask only when a batch has padding rows.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools

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


def patches(x, kh: int, kw: int):
  """[B, H, W, C] -> [B, H - kh + 1, W - kw + 1, kh * kw * C]: the VALID windows, HWI order."""
  rows, cols = x.shape[1] - kh + 1, x.shape[2] - kw + 1
  return jnp.concatenate([x[:, i:i + rows, j:j + cols, :] for i in range(kh) for j in range(kw)],
                         axis=-1)


def im2col_conv(x, kernel):
  """A stride-1 VALID NHWC/HWIO conv as patches @ kernel [kh * kw * C, O]."""
  kh, kw, channels, features = kernel.shape
  return jnp.dot(patches(x, kh, kw), kernel.reshape((kh * kw * channels, features)))


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
  dkernel = jnp.einsum("bhwk,bhwo->ko", patches(x, kh, kw), g)
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
def _convs_replaced_by(plain_conv):
  jax.lax.conv_general_dilated = _replacing_plain_convs(plain_conv)
  try:
    yield
  finally:
    jax.lax.conv_general_dilated = _LAX_CONV


im2col_convs = functools.partial(_convs_replaced_by, im2col_conv)
im2col_convs.__doc__ = "Within the block, plain convs are `im2col_conv` (trace a step inside it)."
gemm_kernel_gradients = functools.partial(_convs_replaced_by, gemm_kernel_gradient_conv)
gemm_kernel_gradients.__doc__ = "Within the block, plain convs are `gemm_kernel_gradient_conv`."


@dataclasses.dataclass(frozen=True)
class ignore_mask:  # noqa: N801 (used like a function)
  """`model` whose apply drops the `mask` argument (BatchNorm over the whole batch)."""
  model: nn.Module

  def apply(self, variables, x, mask=None, **kwargs):
    del mask
    return self.model.apply(variables, x, **kwargs)

  def __getattr__(self, name):
    return getattr(self.model, name)


@jax.custom_vjp
def hwio_input_gradient_conv(x, kernel):
  """A stride-1 VALID NHWC/HWIO conv whose input gradient convolves with the flipped kernel laid
  out HWIO in memory (an optimization barrier keeps XLA from folding the transpose into the
  conv's dimension numbers, which inside a while loop takes a slow conv path on XLA:CPU)."""
  return _lax_valid_conv(x, kernel)


def _forward_hwio(x, kernel):
  return _lax_valid_conv(x, kernel), (x, kernel)


def _backward_hwio(residuals, g):
  x, kernel = residuals
  kh, kw = kernel.shape[:2]
  flipped = jax.lax.optimization_barrier(jnp.flip(kernel, (0, 1)).transpose((0, 1, 3, 2)))
  padded = jnp.pad(g, ((0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1), (0, 0)))
  dkernel = jax.vjp(lambda k: _lax_valid_conv(x, k), kernel)[1](g)[0]
  return _lax_valid_conv(padded, flipped), dkernel


hwio_input_gradient_conv.defvjp(_forward_hwio, _backward_hwio)
hwio_input_gradients = functools.partial(_convs_replaced_by, hwio_input_gradient_conv)
hwio_input_gradients.__doc__ = "Within the block, plain convs are `hwio_input_gradient_conv`."
