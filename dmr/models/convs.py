"""Stride-1 VALID convolutions, images NHWC and kernels HWIO, with gradients XLA:CPU computes fast.

Every conv of dmr's conv stacks is one of these: `strided_conv` (StridedConv's, and any other
model's through conv_rewrite) turns a strided conv into one by space-to-depth, TransposedConv by
phase decomposition. Values equal
lax.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
and gradients (input and kernel, first order; also second order) equal its autodiff, up to float
rounding. `valid_conv` picks the faster of two forms per kernel size (benchmarks/ measures them).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

_NHWC = ("NHWC", "HWIO", "NHWC")


def _lax_valid_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=_NHWC)


@jax.custom_vjp
def gemm_input_gradient_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """`valid_conv` computed by lax.conv_general_dilated, whose input gradient is `im2col_conv`'s:
  the output gradient times the transposed kernel matrix, each tap's share added back where its
  window lies (a matrix product, pads and adds; no conv). Autodiff's input gradient is a conv
  with a flipped, transposed kernel, which XLA:CPU runs slowly inside a lax.while_loop (the
  attacks' loop) and, for the paper classifier's three convs, 1.4-4.4x slower than this product
  (measured at 1 core, each jitted alone). The kernel gradient is autodiff's.
  """
  return _lax_valid_conv(x, kernel)


def _gemm_input_gradient_forward(x, kernel):
  return _lax_valid_conv(x, kernel), (x, kernel)


def _gemm_input_gradient_backward(residuals, g):
  x, kernel = residuals
  input_gradient = jax.linear_transpose(lambda x: im2col_conv(x, kernel), x)(g)[0]
  kernel_gradient = jax.vjp(lambda k: _lax_valid_conv(x, k), kernel)[1](g)[0]
  return input_gradient, kernel_gradient


gemm_input_gradient_conv.defvjp(_gemm_input_gradient_forward, _gemm_input_gradient_backward)


def patches(x: jax.Array, kh: int, kw: int) -> jax.Array:
  """x [B, H, W, C] -> its VALID windows [B, H - kh + 1, W - kw + 1, kh * kw * C] (HWC order)."""
  rows, cols = x.shape[1] - kh + 1, x.shape[2] - kw + 1
  return jnp.concatenate([x[:, i:i + rows, j:j + cols] for i in range(kh) for j in range(kw)],
                         axis=-1)


def im2col_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """valid_conv as a matrix product: patches [.., kh * kw * C] @ kernel [kh * kw * C, O].

  Autodiff makes both gradients matrix products too; XLA:CPU computes a conv's kernel gradient
  as a conv whose window is the whole output map, several times slower than this product.
  """
  kh, kw, channels, features = kernel.shape
  return jnp.dot(patches(x, kh, kw), kernel.reshape((kh * kw * channels, features)))


def valid_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """x [B, H, W, C], kernel [kh, kw, C, O] -> [B, H - kh + 1, W - kw + 1, O].

  Kernels of 9 taps or more (3x3: the discriminator's and the decoder's) as `im2col_conv`, whose
  step is about 2x faster there; smaller ones (2x2: the classifier's and the encoder's) as
  `gemm_input_gradient_conv`, whose forward conv is faster than a product of patches there.
  Neither has a conv in its input gradient, so the attacks' while loop runs at full speed.
  """
  kh, kw = kernel.shape[:2]
  return (im2col_conv if kh * kw >= 9 else gemm_input_gradient_conv)(x, kernel)


def strided_conv(x: jax.Array, kernel: jax.Array, strides: tuple[int, int],
                 padding: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
  """lax.conv_general_dilated(x, kernel, strides, padding) with images NHWC and kernels HWIO,
  computed as a stride-1 `valid_conv` of the space-to-depth image: x [B, H, W, C] padded by
  `padding` (pairs of rows/cols >= 0 before and after), kernel [kh, kw, C, O] ->
  [B, (H' - kh) // sh + 1, (W' - kw) // sw + 1, O] for the padded size H' x W'.

  The kernel is zero-padded to a multiple of the stride and split into s x s blocks of taps
  (kernel 4, stride 2: 2x2 taps on 4C channels), the image reshaped alike, so every product of
  the strided conv is computed once (plus zeros when the stride does not divide the kernel).
  XLA:CPU computes the input gradient of a strided conv many times slower than this form's.
  """
  (sh, sw), (kh, kw, channels, features) = strides, kernel.shape
  x = jnp.pad(x, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
  out_rows, out_cols = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
  blocks_h, blocks_w = -(-kh // sh), -(-kw // sw)  # Kernel blocks of s x s taps.
  kernel = jnp.pad(kernel, ((0, blocks_h * sh - kh), (0, blocks_w * sw - kw), (0, 0), (0, 0)))
  rows, cols = (out_rows - 1 + blocks_h) * sh, (out_cols - 1 + blocks_w) * sw  # Rows covered.
  x = jnp.pad(x[:, :rows, :cols], ((0, 0), (0, max(rows - x.shape[1], 0)),
                                   (0, max(cols - x.shape[2], 0)), (0, 0)))
  batch = x.shape[0]
  x = x.reshape((batch, rows // sh, sh, cols // sw, sw, channels)).transpose((0, 1, 3, 2, 4, 5))
  x = x.reshape((batch, rows // sh, cols // sw, sh * sw * channels))
  kernel = kernel.reshape((blocks_h, sh, blocks_w, sw, channels, features))
  kernel = kernel.transpose((0, 2, 1, 3, 4, 5)).reshape((blocks_h, blocks_w, -1, features))
  return valid_conv(x, kernel.astype(x.dtype))


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None) -> jax.Array:
  """lax.conv_general_dilated restricted to `valid_conv`'s case, for
  nn.Conv(..., padding="VALID", conv_general_dilated=convs.conv_general_dilated)."""
  del precision, preferred_element_type
  layout = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
  ones = lambda values: values is None or all(v == 1 for v in values)
  if not (padding == "VALID" and ones(window_strides) and ones(lhs_dilation)
          and ones(rhs_dilation) and feature_group_count == batch_group_count == 1
          and layout == jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)):
    raise ValueError("convs.conv_general_dilated computes only stride-1 VALID NHWC/HWIO convs; "
                     "use jax.lax.conv_general_dilated for others.")
  return valid_conv(lhs, rhs)
