"""Claim 1 (PAPER.md, "Distance to the manifold"): how far test images and their adversarial
examples lie from a data manifold, and from the local subspace of their nearest training images.

- `manifold_distances`: mean distances to one manifold (any dmr.manifolds.Manifold) and the share
  of the regular perturbations that leaves it: the one measure of claim 1's verdict.
- `NeighbourIndex`, `local_subspace_distances`, `local_distances`: the local estimate from the
  nearest training images (searched in a PCA space).
Images are float [B, H, W, C] in [0, 1]; distances are L2 norms over all pixels.
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dmr import parallel


def _flat(x: jax.Array) -> jax.Array:
  return x.reshape((x.shape[0], -1))


def _mean(values) -> float:
  return float(np.nanmean(np.asarray(values, np.float64)))


def manifold_distances(distance_fn: Callable[[np.ndarray, np.ndarray], np.ndarray], rows, x,
                       x_off, on) -> dict:
  """Mean distances to a manifold (distance_fn(images, rows) -> [N], images[i] derived from test
  row rows[i]) of test images x (rows `rows`), their regular adversarial examples x_off and the
  on-manifold adversarial examples of `on` (a dmr.manifolds.OnManifold); and the share of the
  regular perturbations' squared norm that leaves the manifold,
  sum(d(x_off)^2 - d(x)^2) / sum(||x_off - x||^2): 1 when they are orthogonal to the manifold, 0
  along it (a ratio of sums: the approximate projections' per-image noise averages out)."""
  d_test, d_off = distance_fn(x, rows), distance_fn(x_off, rows)
  norm = np.linalg.norm((x_off - x).reshape(len(x), -1), axis=1)
  leaving = np.sum(d_off**2 - d_test**2) / max(float(np.sum(norm**2)), 1e-12)
  return {"test_distance": _mean(d_test), "off_adversarial_distance": _mean(d_off),
          "on_adversarial_distance": _mean(distance_fn(on.x_adv, on.rows)),
          "perturbation_norm": _mean(norm), "off_manifold_fraction": float(leaving)}


class NeighbourIndex(NamedTuple):
  """PCA of the training images and their codes in it: mean [D], components [D, k] (orthonormal
  columns), codes [N, k] = (x_train - mean) @ components."""
  mean: jax.Array
  components: jax.Array
  codes: jax.Array


def fit_pca(x: np.ndarray, dims: int, seed: int = 0, power_iterations: int = 4,
            oversampling: int = 10) -> tuple[np.ndarray, np.ndarray]:
  """(mean [D], components [D, dims]) of the rows of x [n, D], by randomized SVD (Halko et al.):
  exact up to the gap between the dims-th and later singular values, and O(n D dims)."""
  x = np.asarray(x, np.float32)
  mean = x.mean(axis=0)
  centered = x - mean
  rng = np.random.default_rng(seed)
  basis = centered @ rng.standard_normal((x.shape[1], dims + oversampling)).astype(np.float32)
  for _ in range(power_iterations):
    basis, _ = np.linalg.qr(basis)
    basis, _ = np.linalg.qr(centered @ (centered.T @ basis))
  _, _, vt = np.linalg.svd(basis.T @ centered, full_matrices=False)
  return mean, vt[:dims].T


def build_neighbour_index(x_train, dims: int = 40, fit_rows: int = 10_000, seed: int = 0,
                          batch_size: int = 10_000) -> NeighbourIndex:
  """The PCA space (fitted on `fit_rows` random training images) and every training image's code.

  x_train: any array-like [N, H, W, C] with integer-array indexing (numpy, lazily rendered FONTS).
  """
  n = len(x_train)
  fit = np.sort(np.random.default_rng(seed).choice(n, min(fit_rows, n), replace=False))
  dims = min(dims, len(fit), int(np.prod(x_train.shape[1:])))
  mean, components = fit_pca(np.asarray(x_train[fit]).reshape(len(fit), -1), dims, seed)
  codes = [(np.asarray(x_train[np.arange(s, min(s + batch_size, n))]).reshape(-1, len(mean))
            - mean) @ components for s in range(0, n, batch_size)]
  return NeighbourIndex(jnp.asarray(mean), jnp.asarray(components),
                        jnp.asarray(np.concatenate(codes)))


@functools.partial(jax.jit, static_argnames="k")
def nearest_neighbours(index: NeighbourIndex, x: jax.Array, k: int = 50) -> jax.Array:
  """Indices [B, k] of the k training images nearest to each x [B, ...] in the PCA space.
  Memory: B x N distances."""
  q = (_flat(x) - index.mean) @ index.components
  sq_distances = (jnp.sum(q**2, 1)[:, None] - 2 * q @ index.codes.T
                  + jnp.sum(index.codes**2, 1)[None])
  return jax.lax.top_k(-sq_distances, k)[1]


class SubspaceDistances(NamedTuple):
  """Per image [B]: residual norms, after projecting onto the local subspace, of x_adv - mean
  (`adversarial`), x - mean (`clean`) and x_adv - x (`perturbation`); `angle` in degrees between
  the perturbation and the subspace (90: orthogonal; NaN for a zero perturbation)."""
  adversarial: jax.Array
  clean: jax.Array
  perturbation: jax.Array
  angle: jax.Array


@functools.partial(jax.jit, static_argnames="rank_tol")
def local_subspace_distances(x: jax.Array, x_adv: jax.Array, neighbours: jax.Array,
                             rank_tol: float = 1e-5) -> SubspaceDistances:
  """Distances to the affine subspace mean + span(neighbours - mean) (PAPER.md).

  x, x_adv: [B, H, W, C]; neighbours: [B, K, H, W, C], e.g. x_train[nearest_neighbours(...)].
  The span's basis is the right singular vectors of (neighbours - mean) with singular values
  above rank_tol times the largest (centering removes one dimension).
  """
  nb = neighbours.reshape(neighbours.shape[:2] + (-1,))
  mean = nb.mean(axis=1)
  _, s, vt = jnp.linalg.svd(nb - mean[:, None], full_matrices=False)  # vt [B, K, D]
  basis = vt * (s > rank_tol * s[:, :1])[..., None]

  def split(v):  # v [B, D] -> (norm of its projection, norm of its residual).
    inside = jnp.einsum("bkd,bk->bd", basis, jnp.einsum("bkd,bd->bk", basis, v))
    return jnp.linalg.norm(inside, axis=1), jnp.linalg.norm(v - inside, axis=1)

  x, x_adv = _flat(x), _flat(x_adv)
  _, adversarial = split(x_adv - mean)
  _, clean = split(x - mean)
  inside, perturbation = split(x_adv - x)
  norm = jnp.linalg.norm(x_adv - x, axis=1)
  cosine = jnp.clip(inside / jnp.where(norm > 0, norm, 1.0), 0.0, 1.0)
  angle = jnp.where(norm > 0, jnp.degrees(jnp.arccos(cosine)), jnp.nan)
  return SubspaceDistances(adversarial, clean, perturbation, angle)


def local_distances(x_train, x: np.ndarray, x_adv: np.ndarray, *, neighbours: int, pca_dims: int,
                    seed: int, batch_size: int, mesh) -> dict:
  """Mean residuals and angle of x_adv against the local subspaces of x's `neighbours` nearest
  training images (searched in a PCA space of pca_dims, fitted with `seed`), beside the expected
  angle of a random direction to a subspace of that dimension."""
  index = build_neighbour_index(x_train, pca_dims, seed=seed)

  def measure(xb, ab):
    nearest = np.asarray(nearest_neighbours(index, xb, neighbours))
    return local_subspace_distances(xb, ab, jnp.asarray(np.asarray(x_train[nearest])))

  local = parallel.map_in_batches(measure, (x, x_adv), batch_size, mesh)
  return {"residual_clean": _mean(local.clean), "residual_adversarial": _mean(local.adversarial),
          "residual_perturbation": _mean(local.perturbation), "angle_degrees": _mean(local.angle),
          # The expected angle of a random direction to a (K-1)-dim subspace of R^D.
          "random_direction_angle_degrees": float(np.degrees(np.arccos(np.sqrt(
              (neighbours - 1) / np.prod(x.shape[1:])))))}
