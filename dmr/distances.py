"""Claim 1 (docs/protocol.md#distances-to-the-manifold): how far test images and their adversarial
examples lie from a data manifold, and from the local subspace of their nearest training images.

- `manifold_distances`: distances to one manifold (any dmr.manifolds.Manifold) and the share of
  the regular perturbations that leaves it (`leaving_parts`), beside three references measured
  the same way: a tangent direction at the same images (the measure's floor), a random direction
  and the on-manifold perturbations: the measures of claim 1's verdict.
- `tangent_normal_parts`, `tangent_space_parts`: claim 1's share as a true share in [0, 1], the
  part of each perturbation orthogonal to the manifold's tangent space at x's projection (the
  decoder's Jacobian in the code there), beside a random direction's (about 1 - k / D).
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

from dmr import geometry, parallel


def _flat(x: jax.Array) -> jax.Array:
  return x.reshape((x.shape[0], -1))


def _mean(values) -> float:
  values = np.asarray(values, np.float64)
  return float(np.nanmean(values)) if values.size else float("nan")


def _share(leaving_sq: np.ndarray, perturbation_sq: np.ndarray) -> float:
  total = float(np.sum(perturbation_sq))
  return float(np.sum(leaving_sq)) / total if total > 0 else float("nan")


class Leaving(NamedTuple):
  """Per image [N]: distance of x and of x_adv to the manifold, the squared norm of the part of
  the perturbation leaving it (||r(x_adv) - r(x)||^2, r the residual image - projection) and the
  perturbation's squared norm ||x_adv - x||^2."""
  distance: np.ndarray
  adversarial_distance: np.ndarray
  leaving_sq: np.ndarray
  perturbation_sq: np.ndarray


def leaving_parts(project: Callable, x: np.ndarray, x_adv: np.ndarray,
                  start: tuple | None = None) -> Leaving:
  """How much of each perturbation x_adv - x [N, ...] leaves a manifold.

  project(images, init) -> (codes, projections): the manifold's projection, warm-started at
  codes `init` when given; start: project(x, None) when already computed. x_adv is projected
  from x's best code, so both residuals come from the same local piece of the manifold; the
  leaving part r(x_adv) - r(x) is then the perturbation's component normal to the manifold (exact
  for a linear manifold), unbiased by x's own distance to it, unlike d(x_adv)^2 - d(x)^2 =
  ||delta_n||^2 + 2 r(x).delta_n.
  """
  if not len(x):
    return Leaving(*(np.zeros(0) for _ in Leaving._fields))
  codes, p = project(x, None) if start is None else start
  _, p_adv = project(x_adv, codes)
  r, r_adv = _flat(np.asarray(x - p, np.float64)), _flat(np.asarray(x_adv - p_adv, np.float64))
  delta = _flat(np.asarray(x_adv, np.float64) - np.asarray(x, np.float64))
  return Leaving(np.linalg.norm(r, axis=1), np.linalg.norm(r_adv, axis=1),
                 np.sum((r_adv - r)**2, axis=1), np.sum(delta**2, axis=1))


def _norms(v: np.ndarray) -> np.ndarray:
  """Per-image L2 norms of v [N, ...], shaped [N, 1, ...] to broadcast against it."""
  flat = v.reshape(len(v), int(np.prod(v.shape[1:])))  # also for N = 0
  return np.linalg.norm(flat, axis=1).reshape((-1,) + (1,) * (v.ndim - 1))


def _rescaled(v: np.ndarray, norms: np.ndarray) -> np.ndarray:
  """v [N, ...] with each image's norm set to norms [N, 1, ...] (a zero image stays zero)."""
  size = _norms(v)
  return v * np.divide(norms, size, out=np.zeros_like(size), where=size > 0)


def random_direction(x: np.ndarray, x_adv: np.ndarray, seed: int) -> np.ndarray:
  """x + a uniformly random direction of the norm of x_adv - x, per image (not clipped to the
  box: a reference for the geometry, not an input of the classifier)."""
  u = np.random.default_rng(seed).standard_normal(x.shape).astype(np.float32)
  return x + _rescaled(u, _norms(x_adv - x)).astype(x.dtype)


TANGENT_STEP = 1e-2  # Code step of the tangent's central difference (codes are of unit scale).


def tangent_direction(decode: Callable, codes: np.ndarray, x: np.ndarray, x_adv: np.ndarray,
                      seed: int, step: float = TANGENT_STEP) -> np.ndarray:
  """x + a direction along the manifold at x's projection, of the norm of x_adv - x, per image.

  decode(codes [N, d]) -> images [N, ...]: the manifold's images of the projection's codes;
  codes: x's best codes. The direction is the central difference
  decode(z + step u) - decode(z - step u) for a uniformly random unit code direction u, i.e. the
  decoder's Jacobian times u up to O(step^2): a tangent of the manifold at decode(z).
  """
  u = np.random.default_rng(seed).standard_normal(codes.shape)
  u = (step * u / np.linalg.norm(u, axis=1, keepdims=True)).astype(codes.dtype)
  t = np.asarray(decode(codes + u), np.float64) - np.asarray(decode(codes - u), np.float64)
  return x + _rescaled(t, _norms(x_adv - x)).astype(x.dtype)


def manifold_distances(project_of: Callable, decode_of: Callable, rows: np.ndarray,
                       x: np.ndarray, x_off: np.ndarray, on_rows: np.ndarray, x_on: np.ndarray,
                       x_on_adv: np.ndarray, seed: int) -> tuple[dict, dict]:
  """Claim 1 on one manifold: (summary, per-image arrays) of the regular perturbations
  x_off - x of test rows `rows`, beside three references of the same measure: a direction along
  the manifold of the same norm at the same images (`tangent_direction`: the measure's floor, 0
  for a linear manifold and an exact projection), a random direction of the same norm (upper
  reference) and the on-manifold perturbations x_on_adv - x_on of test rows `on_rows` (lower
  reference); pass only successful adversarial examples of correctly classified inputs.

  project_of(rows)(images, init) -> (codes, projections): the manifold's projection of images
  derived from those test rows; decode_of(rows)(codes) -> images: the manifold's images of its
  codes. The shares are ratios of sums, sum(leaving_sq) / sum(perturbation_sq): 1 when the
  perturbations are normal to the manifold, 0 along it. Arrays follow dmr.outcomes's claim-1
  schema without the kind prefix.
  """
  project = project_of(rows)
  start = project(x, None) if len(x) else None  # (x's best codes, its projections)
  parts = lambda x_adv: leaving_parts(project, x, x_adv, start)
  off = parts(x_off)
  x_tangent = tangent_direction(decode_of(rows), start[0], x, x_off, seed) if len(x) else x_off
  tangent = parts(x_tangent)
  random = parts(random_direction(x, x_off, seed))
  on = leaving_parts(project_of(on_rows), x_on, x_on_adv)
  summary = {
      "images": int(len(x)), "on_images": int(len(x_on)),
      "test_distance": _mean(off.distance), "off_adversarial_distance":
      _mean(off.adversarial_distance), "on_adversarial_distance": _mean(on.adversarial_distance),
      "perturbation_norm": _mean(np.sqrt(off.perturbation_sq)),
      "off_manifold_fraction": _share(off.leaving_sq, off.perturbation_sq),
      "tangent_off_manifold_fraction": _share(tangent.leaving_sq, tangent.perturbation_sq),
      "random_off_manifold_fraction": _share(random.leaving_sq, random.perturbation_sq),
      "on_off_manifold_fraction": _share(on.leaving_sq, on.perturbation_sq)}
  f32 = lambda a: np.asarray(a, np.float32)
  arrays = {
      "test_distance": f32(off.distance), "off_distance": f32(off.adversarial_distance),
      "on_distance": f32(on.adversarial_distance), "leaving_sq": f32(off.leaving_sq),
      "perturbation_sq": f32(off.perturbation_sq), "tangent_leaving_sq": f32(tangent.leaving_sq),
      "tangent_perturbation_sq": f32(tangent.perturbation_sq),
      "random_leaving_sq": f32(random.leaving_sq),
      "random_perturbation_sq": f32(random.perturbation_sq), "on_leaving_sq": f32(on.leaving_sq),
      "on_perturbation_sq": f32(on.perturbation_sq)}
  return summary, arrays


class NormalParts(NamedTuple):
  """Per image [B]: the squared norm of the perturbation's part orthogonal to the tangent space
  (`normal_sq`) and its squared norm (`perturbation_sq`); their ratio is in [0, 1]."""
  normal_sq: jax.Array
  perturbation_sq: jax.Array


TANGENT_RANK_TOL = 1e-6  # Singular values of the Jacobian below this times the largest are 0.


def _normal_parts_one(decode_fn, code, delta, aux, rank_tol):
  decode_one = lambda z: decode_fn(z[None], *(a[None] for a in aux))[0].reshape(-1)
  jacobian = jax.jacfwd(decode_one)(code)  # [D, k]: k forward-mode products
  u, s, _ = jnp.linalg.svd(jacobian, full_matrices=False)
  basis = u * (s > rank_tol * s[0])  # orthonormal columns spanning the tangent space
  d = delta.reshape(-1)
  normal = d - basis @ (basis.T @ d)
  return NormalParts(jnp.sum(normal**2), jnp.sum(d**2))


@functools.partial(jax.jit, static_argnames="rank_tol")
def tangent_normal_parts(decode_fn: Callable, codes: jax.Array, delta: jax.Array,
                         aux: tuple = (), rank_tol: float = TANGENT_RANK_TOL) -> NormalParts:
  """How much of each perturbation delta [B, ...] is orthogonal to the manifold at decode(codes).

  decode_fn(codes [B, k], *aux) -> images [B, ...], a jax.tree_util.Partial (one compilation per
  decoder architecture), e.g. a VAE-GAN's decode_fn or `fonts_decode` with aux (prototypes,);
  codes [B, k]: x's best codes z*; aux: arrays [B, ...] of per-image decoder inputs. The tangent
  space is the column space of the Jacobian d decode / d z at z* [D, k] (orthonormalised by an
  SVD, rank-deficient directions dropped); share = normal_sq / perturbation_sq is 0 along the
  manifold and 1 orthogonal to it, and E share = 1 - k / D for a random direction.
  """
  return jax.vmap(lambda z, d, a: _normal_parts_one(decode_fn, z, d, a, rank_tol))(
      codes, delta, tuple(aux))


def fonts_decode(theta: jax.Array, prototypes: jax.Array) -> jax.Array:
  """The known FONTS manifold as a decoder of codes theta [B, 6]: each row's prototype
  [B, H, W, 1] rendered under its theta (dmr.manifolds.known's decoding)."""
  return geometry.transform(prototypes, theta)


def tangent_space_parts(decode_fn: Callable, codes: np.ndarray, x: np.ndarray,
                        x_adv: np.ndarray, seed: int, aux: tuple = ()) -> dict[str, np.ndarray]:
  """Claim 1's true shares on one batch: float32 [B] arrays `tangent_normal_sq`,
  `tangent_perturbation_sq` of the perturbations x_adv - x and `random_tangent_normal_sq`,
  `random_tangent_perturbation_sq` of a random direction of the same norms (`random_direction`),
  both against the tangent space at decode(codes) (`tangent_normal_parts`)."""
  parts = lambda x_to: tangent_normal_parts(decode_fn, jnp.asarray(codes),
                                            jnp.asarray(x_to - x), tuple(map(jnp.asarray, aux)))
  off, random = parts(x_adv), parts(random_direction(x, x_adv, seed))
  f32 = lambda a: np.asarray(a, np.float32)
  return {"tangent_normal_sq": f32(off.normal_sq),
          "tangent_perturbation_sq": f32(off.perturbation_sq),
          "random_tangent_normal_sq": f32(random.normal_sq),
          "random_tangent_perturbation_sq": f32(random.perturbation_sq)}


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
  """Distances to the affine subspace mean + span(neighbours - mean)
  (docs/protocol.md#local-subspace).

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
  angle of a random direction to a subspace of that dimension ({"images": 0} without images)."""
  if not len(x):
    return {"images": 0}
  index = build_neighbour_index(x_train, pca_dims, seed=seed)

  def measure(xb, ab):
    nearest = np.asarray(nearest_neighbours(index, xb, neighbours))
    return local_subspace_distances(xb, ab, jnp.asarray(np.asarray(x_train[nearest])))

  local = parallel.map_in_batches(measure, (x, x_adv), batch_size, mesh)
  return {"images": int(len(x)), "residual_clean": _mean(local.clean), "residual_adversarial": _mean(local.adversarial),
          "residual_perturbation": _mean(local.perturbation), "angle_degrees": _mean(local.angle),
          # The expected angle of a random direction to a (K-1)-dim subspace of R^D.
          "random_direction_angle_degrees": float(np.degrees(np.arccos(np.sqrt(
              (neighbours - 1) / np.prod(x.shape[1:])))))}
