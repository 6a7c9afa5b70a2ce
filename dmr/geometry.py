"""The differentiable affine warp (spatial transformer) that renders FONTS and the stn_* variants.

A transformation code theta is [tx, ty, shear_x, shear_y, scale, rotation] (docs/protocol.md#fonts).
Its affine matrix maps OUTPUT coordinates to INPUT coordinates, both normalized to [-1, 1] with
the corner pixels' centres at -1 and 1 (torch's affine_grid/grid_sample with align_corners=True),
so one pixel is 2 / (W - 1). Sampling is bilinear with zero padding outside the image.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

THETA_NAMES = ("tx", "ty", "shear_x", "shear_y", "scale", "rotation")
IDENTITY_THETA = np.array([0.0, 0.0, 0.0, 0.0, 1.0, 0.0], np.float32)


@dataclasses.dataclass(frozen=True)
class ThetaRange:
  """A box of transformation codes: lo[k] <= theta[k] <= hi[k], k in THETA_NAMES order."""
  lo: tuple[float, ...]
  hi: tuple[float, ...]

  def __post_init__(self):
    object.__setattr__(self, "lo", tuple(float(v) for v in self.lo))  # hashable: a jit static
    object.__setattr__(self, "hi", tuple(float(v) for v in self.hi))
    if len(self.lo) != 6 or len(self.hi) != 6 or any(l > h for l, h in zip(self.lo, self.hi)):
      raise ValueError(f"ThetaRange needs 6 lower bounds <= 6 upper bounds, got {self}.")

  @classmethod
  def symmetric(cls, translation: float, shear: float, scale: tuple[float, float],
                rotation: float) -> "ThetaRange":
    """The box +-translation, +-shear, [scale[0], scale[1]], +-rotation (radians)."""
    return cls(lo=(-translation, -translation, -shear, -shear, scale[0], -rotation),
               hi=(translation, translation, shear, shear, scale[1], rotation))

  @property
  def box(self) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) as float32 [6] arrays, e.g. the `box` of attacks.latent_pgd."""
    return np.array(self.lo, np.float32), np.array(self.hi, np.float32)

  def contains(self, theta) -> np.ndarray:
    """bool [...]: whether each code theta [..., 6] lies inside the box."""
    lo, hi = self.box
    theta = np.asarray(theta)
    return np.all((theta >= lo) & (theta <= hi), axis=-1)

  def clip(self, theta: jax.Array) -> jax.Array:
    """theta [..., 6] clipped into the box."""
    lo, hi = self.box
    return jnp.clip(theta, lo, hi)


# The FONTS data ranges (docs/protocol.md#fonts) and the stn_augm range of the other datasets.
FONTS_EASY = ThetaRange.symmetric(translation=0.1, shear=0.2, scale=(0.9, 1.1),
                                  rotation=math.pi / 6)
FONTS_MODERATE = ThetaRange.symmetric(translation=0.2, shear=0.4, scale=(0.85, 1.15),
                                      rotation=math.pi / 3)
FONTS_HARD = ThetaRange.symmetric(translation=0.2, shear=0.5, scale=(0.75, 1.15),
                                  rotation=math.pi / 2)
FONTS_RANGES = {"easy": FONTS_EASY, "moderate": FONTS_MODERATE, "hard": FONTS_HARD}
AUGMENTATION = ThetaRange.symmetric(translation=0.15, shear=0.2, scale=(0.85, 1.15),
                                    rotation=math.pi / 10)


def sample_theta(key: jax.Array, shape: tuple[int, ...], lo, hi) -> jax.Array:
  """Codes drawn uniformly from the box [lo, hi]: float32 [*shape, 6].

  Every component, the scale included, covers its whole interval (the original code's
  augmentation sampled around zero and so always hit the minimum scale).
  """
  return jax.random.uniform(key, (*shape, 6), jnp.float32, jnp.asarray(lo, jnp.float32),
                            jnp.asarray(hi, jnp.float32))


def affine_matrix(theta: jax.Array) -> jax.Array:
  """Affine matrices [..., 2, 3] of codes theta [..., 6] (docs/protocol.md#fonts)."""
  tx, ty, l1, l2, s, r = jnp.moveaxis(jnp.asarray(theta), -1, 0)
  cos, sin = jnp.cos(r) * s, jnp.sin(r) * s
  row_x = jnp.stack([cos - sin * l1, -sin + cos * l1, tx], axis=-1)
  row_y = jnp.stack([cos * l2 + sin, -sin * l2 + cos, ty], axis=-1)
  return jnp.stack([row_x, row_y], axis=-2)


def _warp_one(image: jax.Array, matrix: jax.Array) -> jax.Array:
  """Bilinear warp of one image [H, W, C] (H, W >= 2) by one matrix [2, 3]; zeros outside."""
  height, width, channels = image.shape
  cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
  # Output pixel offsets from the centre; the matrix acts on them in normalized units, written
  # out elementwise in pixel units so that the identity is exact and no matmul precision applies.
  v, u = jnp.meshgrid(jnp.arange(height, dtype=image.dtype) - cy,
                      jnp.arange(width, dtype=image.dtype) - cx, indexing="ij")
  (a, b, tx), (c, d, ty) = matrix
  px = cx + a * u + b * (cx / cy) * v + cx * tx              # input pixel coordinates [H, W]
  py = cy + c * (cy / cx) * u + d * v + cy * ty
  x0, y0 = jnp.floor(px), jnp.floor(py)
  fx, fy = px - x0, py - y0                                  # in [0, 1)
  flat = image.reshape(height * width, channels)

  def corner(xi, yi, weight):
    inside = (xi >= 0) & (xi <= width - 1) & (yi >= 0) & (yi <= height - 1)
    index = (jnp.clip(yi, 0, height - 1) * width + jnp.clip(xi, 0, width - 1)).astype(jnp.int32)
    return jnp.where(inside, weight, 0.0)[..., None] * flat[index]

  return (corner(x0, y0, (1 - fx) * (1 - fy)) + corner(x0 + 1, y0, fx * (1 - fy))
          + corner(x0, y0 + 1, (1 - fx) * fy) + corner(x0 + 1, y0 + 1, fx * fy))


def warp(images: jax.Array, matrices: jax.Array) -> jax.Array:
  """Images [B, H, W, C] warped by matrices [B, 2, 3]: out(p) = images(matrix @ [p, 1]).

  Corner-aligned coordinates in [-1, 1], bilinear, zero padding; differentiable in both inputs.
  """
  return jax.vmap(_warp_one)(images, matrices.astype(images.dtype))


def transform(images: jax.Array, theta: jax.Array) -> jax.Array:
  """Images [B, H, W, C] in [0, 1] rendered with codes theta [B, 6], clipped to [0, 1]."""
  return jnp.clip(warp(images, affine_matrix(theta)), 0.0, 1.0)
