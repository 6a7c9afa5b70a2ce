"""The known FONTS manifold as pure functions: decoding theta and projecting images onto it.

For a fixed (font, class) per row the manifold is {transform(prototype, theta): theta in box}
(PAPER.md, "FONTS"). The on-manifold attack is attacks.latent_pgd over theta with
`make_decode_fn(prototypes)` and box=theta_range.box; the distance of an image to the manifold
is `project_to_true_manifold(...).distance`.
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from dmr import geometry
from dmr.manifold import least_error_codes


def make_decode_fn(prototypes: jax.Array) -> Callable[[jax.Array], jax.Array]:
  """decode_fn(theta [B, 6]) -> images [B, H, W, 1] of the fixed prototypes [B, H, W, 1].

  Build it inside the jitted function that uses it, from traced prototypes, so that one
  compilation serves every batch.
  """
  return functools.partial(geometry.transform, prototypes)


class Projection(NamedTuple):
  """theta: [B, 6] best codes; images: [B, H, W, 1] their renderings; distance: [B] L2 norms
  ||x - images|| (pixel values in [0, 1])."""
  theta: jax.Array
  images: jax.Array
  distance: jax.Array


def _squared_errors(prototypes: jax.Array, images: jax.Array, theta: jax.Array) -> jax.Array:
  """Per-row sum of squared differences [B] between images and the renderings of theta."""
  return jnp.sum((geometry.transform(prototypes, theta) - images) ** 2, axis=(1, 2, 3))


@functools.partial(jax.jit, static_argnames=("theta_range", "steps", "restarts"))
def project_to_true_manifold(images: jax.Array, prototypes: jax.Array, key: jax.Array,
                             theta_range: geometry.ThetaRange = geometry.FONTS_HARD,
                             steps: int = 100, restarts: int = 16,
                             lr: float = 0.05) -> Projection:
  """The closest rendering of each row's prototype to the image, over theta in the box.

  images, prototypes: [B, H, W, 1]. Minimizes the squared error over theta with Adam (lr per
  step), projecting onto theta_range after every step, from `restarts` codes drawn uniformly from
  the box (all restarts of all rows run as one batch); keeps per image the code of least error
  seen on any step of any restart.
  """
  batch = images.shape[0]
  tile = lambda a: jnp.broadcast_to(a, (restarts, *a.shape)).reshape(restarts * batch,
                                                                      *a.shape[1:])
  errors_of = functools.partial(_squared_errors, tile(prototypes), tile(images))
  theta = geometry.sample_theta(key, (restarts * batch,), *theta_range.box)
  theta_star = least_error_codes(errors_of, theta, lr, steps, restarts, theta_range.clip)
  rendering = geometry.transform(prototypes, theta_star)
  distance = jnp.sqrt(jnp.sum((images - rendering) ** 2, axis=(1, 2, 3)))
  return Projection(theta_star, rendering, distance)
