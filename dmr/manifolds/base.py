"""The interface every data manifold of a run implements, and the pieces implementations share.

A `Manifold` answers what the stages ask of "the data manifold" of a dataset:
- `attack(logits_fn, rows, spec, key, batch_size, mesh) -> OnManifold`: the on-manifold attack on
  test rows (codes of each row perturbed within spec.eps, decoded, classified);
- `project(images, rows, key, batch_size, mesh, init=None) -> (codes [N, d], projections)`: the
  approximate projection of images onto the manifold, images[i] derived from test row rows[i];
  `init` warm-starts it at given codes (e.g. the clean image's best code);
- `decode(codes, rows, batch_size, mesh) -> images`: the manifold's images of codes [N, d] of
  `project` (codes[i] for test row rows[i]), so decode(project(...)[0]) gives the projections;
- `distance(images, rows, key, batch_size, mesh) -> [N]`: L2 distance of images to the manifold
  (their approximate projection);
- `second_half(spec, n) -> (second_half, aux)`: on-manifold adversarial training on the first n
  training rows (see dmr.train.steps; aux [n, ...] the per-row extras it needs).
Implementations: dmr.manifolds.learned (VAE-GANs) and dmr.manifolds.known (FONTS theta).
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dmr import attacks, parallel


class OnManifold(NamedTuple):
  """An on-manifold attack on test rows `rows` [M], batch first: x_on [M, ...] the on-manifold
  images attacked (reconstructions, renderings), x_adv [M, ...] their adversarial examples,
  success [M, R] per restart, z [M, d] the start codes (inside the code box) and z_adv [M, d]
  the adversarial codes (x_adv = their decoding)."""
  rows: np.ndarray
  x_on: np.ndarray
  x_adv: np.ndarray
  success: np.ndarray
  z: np.ndarray
  z_adv: np.ndarray


class Manifold(Protocol):
  """A data manifold (see the module docstring)."""

  def attack(self, logits_fn, rows: np.ndarray, spec: attacks.AttackSpec, key: jax.Array,
             batch_size: int, mesh) -> OnManifold: ...

  def project(self, images: np.ndarray, rows: np.ndarray, key: jax.Array, batch_size: int,
              mesh, init: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]: ...

  def decode(self, codes: np.ndarray, rows: np.ndarray, batch_size: int, mesh) -> np.ndarray: ...

  def distance(self, images: np.ndarray, rows: np.ndarray, key: jax.Array, batch_size: int,
               mesh) -> np.ndarray: ...

  def second_half(self, spec: attacks.AttackSpec, n: int) -> tuple[Callable, np.ndarray]: ...


@functools.partial(jax.jit, static_argnames="spec")
def _attack(decode_fn, logits_fn, z, y, key, box, spec: attacks.AttackSpec):
  r = attacks.latent_pgd(decode_fn, logits_fn, z, y, key=key, box=box, **spec.options())
  return r.z_adv, r.x_adv, r.success_per_restart.T


def attack_codes(decode, logits_fn, z: np.ndarray, y: np.ndarray, row_data: tuple, box,
                 spec: attacks.AttackSpec, key: jax.Array, batch_size: int,
                 mesh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """attacks.latent_pgd on logits_fn(decode_fn(z)) in batches of `batch_size` rows sharded over
  `mesh`, z + zeta inside `box` (z [N, d] is clipped into it first: test codes may lie slightly
  outside the training codes' range). decode_fn of a batch is decode itself, or, with per-row
  data (e.g. FONTS prototypes, each [N, ...]), jax.tree_util.Partial(decode, *row_data batch).
  One compilation serves every batch and every decode of the same function. Returns z_adv
  [N, d], x_adv [N, ...] and success [N, R], rows in the order of z."""
  lo, hi = box
  z = np.clip(np.asarray(z), np.asarray(lo), np.asarray(hi))

  def attack(zb, yb, *rest):
    *data, batch_key = rest
    decode_fn = jax.tree_util.Partial(decode, *data) if data else decode
    return _attack(decode_fn, logits_fn, zb, yb, batch_key, (lo, hi), spec=spec)

  return parallel.map_in_batches(attack, (z, np.asarray(y), *row_data), batch_size, mesh, key,
                                 desc="on-manifold attack")


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
