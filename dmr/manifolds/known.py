"""The known FONTS manifold (docs/protocol.md#fonts): codes are theta, decoding renders a row's own
(font, class) prototype under theta.

For a fixed prototype per row the manifold is {transform(prototype, theta): theta in the data's
box}. `KnownManifold` implements dmr.manifolds.base.Manifold on a FONTS dataset (its splits are
dmr.data.fonts.RenderedImages: prototypes_at(rows), theta [N, 6], theta_range).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dmr import attacks, geometry, parallel
from dmr.data.dataset import Dataset
from dmr.manifolds.base import OnManifold, attack_codes, least_error_codes


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
                             lr: float = 0.05, init: jax.Array | None = None) -> Projection:
  """The closest rendering of each row's prototype to the image, over theta in the box.

  images, prototypes: [B, H, W, 1]. Minimizes the squared error over theta with Adam (lr per
  step), projecting onto theta_range after every step, from `restarts` codes drawn uniformly from
  the box (all restarts of all rows run as one batch), or from init [B, 6] alone (a warm start);
  keeps per image the code of least error seen on any step of any restart.
  """
  batch = images.shape[0]
  restarts = 1 if init is not None else restarts
  tile = lambda a: jnp.broadcast_to(a, (restarts, *a.shape)).reshape(restarts * batch,
                                                                      *a.shape[1:])
  errors_of = functools.partial(_squared_errors, tile(prototypes), tile(images))
  theta = (geometry.sample_theta(key, (restarts * batch,), *theta_range.box) if init is None
           else theta_range.clip(init))
  theta_star = least_error_codes(errors_of, theta, lr, steps, restarts, theta_range.clip)
  rendering = geometry.transform(prototypes, theta_star)
  distance = jnp.sqrt(jnp.sum((images - rendering) ** 2, axis=(1, 2, 3)))
  return Projection(theta_star, rendering, distance)


@dataclasses.dataclass(frozen=True)
class KnownManifold:
  """The true FONTS manifold of `ds` (see the module docstring); projection_steps: Adam steps of
  the projection behind `distance`."""
  ds: Dataset
  projection_steps: int = 100

  def attack(self, logits_fn, rows: np.ndarray, spec: attacks.AttackSpec, key: jax.Array,
             batch_size: int, mesh) -> OnManifold:
    """L-inf spec.eps in theta space around each test row's theta, inside the data's range."""
    x = self.ds.x_test
    prototypes, theta = x.prototypes_at(rows), x.theta[rows]
    theta_adv, x_adv, success = attack_codes(geometry.transform, logits_fn, theta,
                                             self.ds.y_test[rows], (prototypes,),
                                             x.theta_range.box, spec, key, batch_size, mesh)
    x_on = self.decode(theta, rows, batch_size, mesh)
    lo, hi = x.theta_range.box
    return OnManifold(np.asarray(rows), x_on, x_adv, success,
                      np.clip(theta, np.asarray(lo), np.asarray(hi)), theta_adv)

  def project(self, images: np.ndarray, rows: np.ndarray, key: jax.Array, batch_size: int,
              mesh, init: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(theta [N, 6], renderings [N, ...]): the closest rendering of test row rows[i]'s prototype
    to images[i], from random restarts, or from `init` [N, 6] alone (a warm start)."""
    theta_range, steps = self.ds.x_test.theta_range, self.projection_steps
    prototypes = self.ds.x_test.prototypes_at(rows)
    if init is None:
      project = lambda xb, pb, k: project_to_true_manifold(xb, pb, k, theta_range,
                                                           steps=steps)[:2]
      return parallel.map_in_batches(project, (images, prototypes), batch_size, mesh, key)
    project = lambda xb, pb, tb, k: project_to_true_manifold(xb, pb, k, theta_range, steps=steps,
                                                             init=tb)[:2]
    return parallel.map_in_batches(project, (images, prototypes, np.asarray(init)), batch_size,
                                   mesh, key)

  def decode(self, codes: np.ndarray, rows: np.ndarray, batch_size: int, mesh) -> np.ndarray:
    """Renderings [N, ...] of test row rows[i]'s prototype under theta codes[i] [N, 6]."""
    return parallel.map_in_batches(jax.tree_util.Partial(geometry.transform),
                                   (self.ds.x_test.prototypes_at(rows), np.asarray(codes)),
                                   batch_size, mesh)

  def distance(self, images: np.ndarray, rows: np.ndarray, key: jax.Array, batch_size: int,
               mesh) -> np.ndarray:
    """Distance of images[i] to the renderings of test row rows[i]'s prototype."""
    _, projections = self.project(images, rows, key, batch_size, mesh)
    return np.linalg.norm((images - projections).reshape(len(images), -1), axis=1)

  def second_half(self, spec: attacks.AttackSpec, n: int):
    """Adversarial theta around each training row's own theta; aux: the rows' indices [n]."""
    x = self.ds.x_train
    prototypes, theta = jnp.asarray(x.prototypes_at(np.arange(n))), jnp.asarray(x.theta[:n])
    box = x.theta_range.box

    def second_half(logits_fn, x, y, key, index):
      decode_fn = functools.partial(geometry.transform, prototypes[index])
      return attacks.latent_pgd(decode_fn, logits_fn, theta[index], y, key=key, box=box,
                                **spec.options()).x_adv

    return second_half, np.arange(n)
