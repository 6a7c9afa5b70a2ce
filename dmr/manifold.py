"""The learned data manifold as pure functions: distances to it and on-manifold attacks.

- `project_onto_decoder`: approximate projection of images onto a decoder's range (PAPER.md,
  "Distance to the manifold"), and the L2 distance to it.
- `NeighbourIndex`, `local_subspace_distances`: the local estimate from the nearest training
  images (searched in a PCA space).
- `latent_box`, `within_prior`: the latent box and the |mu| <= 2 filter of the on-manifold attack.
- `attack_with_class_decoders`: the learned on-manifold attack, each image through the decoder of
  its true class (PAPER.md, "Attacks").
Images are float [B, H, W, C] in [0, 1]; distances are L2 norms over all pixels.
"""
from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dmr import attacks, parallel
from dmr.attacks.projected_gradient import as_pytree_fn


def _flat(x: jax.Array) -> jax.Array:
  return x.reshape((x.shape[0], -1))


# --- Projection onto a decoder ------------------------------------------------------------------

class DecoderProjection(NamedTuple):
  """z: [B, d] best codes; images: [B, H, W, C] = decode_fn(z); distance: [B] ||x - images||_2."""
  z: jax.Array
  images: jax.Array
  distance: jax.Array


def least_error_codes(errors_of, z, lr, steps: int, restarts: int, project=lambda z: z):
  """Adam (lr) on codes z [R * B, d] (row r * B + b: restart r of input b) minimizing the per-row
  errors_of(z) [R * B], `project` applied after every step; returns per input the code of least
  error over all iterates and restarts, [B, d]."""
  optimizer = optax.adam(lr)

  def step(_, carry):
    z, opt_state, best_z, best_error = carry
    errors, vjp = jax.vjp(errors_of, z)
    (grad,) = vjp(jnp.ones_like(errors))
    improved = errors < best_error
    best_z = jnp.where(improved[:, None], z, best_z)
    updates, opt_state = optimizer.update(grad, opt_state)
    return project(optax.apply_updates(z, updates)), opt_state, best_z, jnp.minimum(errors,
                                                                                   best_error)

  best_error = jnp.full(z.shape[:1], jnp.inf, z.dtype)
  z, _, best_z, best_error = jax.lax.fori_loop(0, steps, step,
                                               (z, optimizer.init(z), z, best_error))
  final_error = errors_of(z)  # The last iterate too.
  best_z = jnp.where((final_error < best_error)[:, None], z, best_z)
  best_error = jnp.minimum(final_error, best_error)
  batch = z.shape[0] // restarts
  winner = jnp.argmin(best_error.reshape(restarts, batch), axis=0)
  return best_z.reshape(restarts, batch, -1)[winner, jnp.arange(batch)]


@functools.partial(jax.jit, static_argnames=("steps", "restarts"))
def _project(decode_fn, x, z_init, key, lr, restart_std, steps: int, restarts: int):
  offsets = restart_std * jax.random.normal(key, (restarts,) + z_init.shape, z_init.dtype)
  z = (z_init[None] + offsets.at[0].set(0.0)).reshape((restarts * x.shape[0], -1))
  targets = jnp.tile(x, (restarts,) + (1,) * (x.ndim - 1))
  errors_of = lambda z: jnp.mean(_flat(decode_fn(z) - targets) ** 2, axis=1)
  best_z = least_error_codes(errors_of, z, lr, steps, restarts)
  images = decode_fn(best_z)
  return DecoderProjection(best_z, images, jnp.linalg.norm(_flat(x - images), axis=1))


def project_onto_decoder(decode_fn, x: jax.Array, z_init: jax.Array, *,
                         key: jax.Array | None = None, steps: int = 100, lr: float = 0.1,
                         restarts: int = 1, restart_std: float = 0.5) -> DecoderProjection:
  """The closest decoded image to each x found by Adam on z, and its L2 distance to x.

  Minimizes the mean squared error ||decode_fn(z) - x||^2 / (H W C) over z with Adam (lr,
  `steps` steps), starting at z_init (e.g. the encoder's mu of x); restarts r >= 1 start at
  z_init + restart_std * N(0, I) (key required). Keeps per image the code of least error over
  all iterates and restarts. All restarts of all rows run as one batch; rows are independent.

  decode_fn: codes [N, d] -> images [N, H, W, C]; pass a jax.tree_util.Partial (e.g.
    LearnedManifold.decode_fn) to reuse the compilation across decoders.
  x: images [B, H, W, C]; z_init: [B, d].
  """
  if restarts > 1 and key is None:
    raise ValueError("project_onto_decoder with restarts > 1 needs a key.")
  key = jax.random.key(0) if key is None else key
  return _project(as_pytree_fn(decode_fn), x, z_init, key, lr, restart_std, steps=steps,
                  restarts=restarts)


# --- Local subspace of the nearest training images ----------------------------------------------

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


# --- Latent box and the on-manifold attack ------------------------------------------------------

def latent_box(codes: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(lo [d], hi [d]): the per-dimension range of the training codes [N, d]."""
  return jnp.min(codes, axis=0), jnp.max(codes, axis=0)


def within_prior(codes: jax.Array, limit: float = 2.0) -> jax.Array:
  """bool [N]: every |mu_i| <= limit; the paper attacks only these codes."""
  return jnp.all(jnp.abs(codes) <= limit, axis=-1)


def _batch_axis(field: str) -> int:
  return 1 if field == "success_per_restart" else 0  # [R, B]; every other field is [B, ...].


def _take_rows(result: attacks.LatentAttackResult, rows: np.ndarray) -> attacks.LatentAttackResult:
  return attacks.LatentAttackResult(*(np.take(np.asarray(value), rows, axis=_batch_axis(field))
                                      for field, value in result._asdict().items()))


def _concatenate(results: list) -> attacks.LatentAttackResult:
  return attacks.LatentAttackResult(*(
      np.concatenate(parts, axis=_batch_axis(field))
      for field, parts in zip(attacks.LatentAttackResult._fields, zip(*results))))


def attack_in_latent_space(decode_fn, logits_fn, z, y, *, key, box, eps: float = 0.3,
                           steps: int = 40, step_size: float = 0.005, optimizer: str = "adam",
                           restarts: int = 5, init: str = "paper", early_stop: bool = True,
                           unroll: bool = False, batch_size: int = 500,
                           mesh=None) -> attacks.LatentAttackResult:
  """attacks.latent_pgd on logits_fn(decode_fn(z)) in batches of `batch_size` rows (the last
  padded, so one compilation serves all), L-inf ||zeta|| <= eps, z + zeta inside `box`.

  Defaults are the paper's (Adam lr 0.005, 40 steps, 5 restarts, paper init). z [B, d] is first
  clipped into the box (test codes may lie slightly outside the training codes' range). With a
  mesh (default: all devices), each batch is sharded over its devices. Returns numpy arrays,
  rows in the order of z.
  """
  lo, hi = box
  z = np.clip(np.asarray(z), np.asarray(lo), np.asarray(hi))

  def attack(zb, yb, batch_key):  # success_per_restart [B, R]: rows first, as map_in_batches needs.
    r = attacks.latent_pgd(decode_fn, logits_fn, zb, yb, key=batch_key, eps=eps, box=(lo, hi),
                           steps=steps, step_size=step_size, optimizer=optimizer,
                           restarts=restarts, init=init, early_stop=early_stop, unroll=unroll)
    return r._replace(success_per_restart=r.success_per_restart.T)

  result = parallel.map_in_batches(attack, (z, np.asarray(y)), batch_size,
                                   mesh or parallel.data_mesh(), key)
  return result._replace(success_per_restart=result.success_per_restart.T)


GROUP_ROWS = 64  # Class groups are padded to a multiple of this: few shapes, little padding.


def attack_with_class_decoders(decode_fns: Sequence, boxes: Sequence, logits_fn, z, y, *, key,
                               batch_size: int = 500, **options) -> attacks.LatentAttackResult:
  """The learned on-manifold attack: image i through the decoder of its true class y[i].

  decode_fns[k], boxes[k]: class k's decoder and latent box; z [B, d]: the codes mu of the images
  under their class's encoder; y [B] labels. Images are grouped by class and each group attacked
  by `attack_in_latent_space` (options as there): the decoders share one compilation, since they
  differ only in their parameters (jax.tree_util.Partial leaves), and no row pays for another
  class's decoder. Every group is attacked in batches of the same size, min(batch_size, the
  largest group rounded up to GROUP_ROWS), so one compilation serves all groups and small groups
  are not padded to batch_size. Returns numpy arrays, rows in the order of z.
  """
  z, y = np.asarray(z), np.asarray(y)
  groups = [np.flatnonzero(y == k) for k in np.unique(y)]
  largest = max(len(rows) for rows in groups)
  size = min(batch_size, -(-largest // GROUP_ROWS) * GROUP_ROWS)
  results = [attack_in_latent_space(decode_fns[y[rows[0]]], logits_fn, z[rows], y[rows],
                                    key=jax.random.fold_in(key, int(y[rows[0]])),
                                    box=boxes[y[rows[0]]], batch_size=size, **options)
             for rows in groups]
  return _take_rows(_concatenate(results), np.argsort(np.concatenate(groups)))
