"""The learned data manifold (docs/protocol.md#vae-gan): codes are the encoder means mu of the true
class's VAE-GAN, decoding is its decoder; distances project onto the class-agnostic decoder.

`LearnedManifold` implements dmr.manifolds.base.Manifold from the trained VAE-GANs
(dmr.manifolds.vaegans). Images are float [B, H, W, C] in [0, 1]; distances are L2 norms over
all pixels.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dmr import attacks, parallel
from dmr.data.dataset import Dataset
from dmr.manifolds.base import OnManifold, attack_codes, least_error_codes
from dmr.manifolds.vaegans import VAEGANs, within_prior
from dmr.models import vaegan as vaegan_models

GROUP_ROWS = 64  # Class groups are padded to a multiple of this: few shapes, little padding.


def _flat(x: jax.Array) -> jax.Array:
  return x.reshape((x.shape[0], -1))


class DecoderProjection(NamedTuple):
  """z: [B, d] best codes; images: [B, H, W, C] = decode_fn(z); distance: [B] ||x - images||_2."""
  z: jax.Array
  images: jax.Array
  distance: jax.Array


@functools.partial(jax.jit, static_argnames=("steps", "restarts"))
def _project(decode_fn, x, z_init, key, lr, restart_std, steps: int, restarts: int):
  offsets = restart_std * jax.random.normal(key, (restarts,) + z_init.shape, z_init.dtype)
  z = (z_init[None] + offsets.at[0].set(0.0)).reshape((restarts * x.shape[0], -1))
  targets = jnp.tile(x, (restarts,) + (1,) * (x.ndim - 1))
  errors_of = lambda z: jnp.mean(_flat(decode_fn(z) - targets) ** 2, axis=1)
  best_z = least_error_codes(errors_of, z, lr, steps, restarts)
  images = decode_fn(best_z)
  return DecoderProjection(best_z, images, jnp.linalg.norm(_flat(x - images), axis=1))


def project_onto_decoder(decode_fn: jax.tree_util.Partial, x: jax.Array, z_init: jax.Array, *,
                         key: jax.Array | None = None, steps: int = 100, lr: float = 0.1,
                         restarts: int = 1, restart_std: float = 0.5) -> DecoderProjection:
  """The closest decoded image to each x found by Adam on z, and its L2 distance to x.

  Minimizes the mean squared error ||decode_fn(z) - x||^2 / (H W C) over z with Adam (lr,
  `steps` steps), starting at z_init (e.g. the encoder's mu of x); restarts r >= 1 start at
  z_init + restart_std * N(0, I) (key required). Keeps per image the code of least error over
  all iterates and restarts. All restarts of all rows run as one batch; rows are independent.

  decode_fn: codes [N, d] -> images [N, H, W, C], a jax.tree_util.Partial (e.g. a VAE-GAN's
    decode_fn): one compilation serves every decoder of the same architecture.
  x: images [B, H, W, C]; z_init: [B, d].
  """
  if restarts > 1 and key is None:
    raise ValueError("project_onto_decoder with restarts > 1 needs a key.")
  key = jax.random.key(0) if key is None else key
  return _project(decode_fn, x, z_init, key, lr, restart_std, steps=steps, restarts=restarts)


def attack_with_class_decoders(decode_fns: Sequence, boxes: Sequence, logits_fn, z, y, *, key,
                               spec: attacks.AttackSpec, batch_size: int = 500,
                               mesh=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The learned on-manifold attack: image i through the decoder of its true class y[i].

  decode_fns[k], boxes[k]: class k's decoder and latent box; z [B, d]: the codes mu of the images
  under their class's encoder; y [B] labels. Images are grouped by class and each group attacked
  by `attack_codes` with key fold_in(key, class): the decoders share one compilation, since they
  differ only in their parameters (jax.tree_util.Partial leaves), and no row pays for another
  class's decoder. Every group is attacked in batches of the same size, min(batch_size, the
  largest group rounded up to GROUP_ROWS), so one compilation serves all groups and small groups
  are not padded to batch_size. Returns z_adv [B, d], x_adv [B, ...] and success [B, R], rows in
  the order of z.
  """
  z, y = np.asarray(z), np.asarray(y)
  mesh = mesh or parallel.data_mesh()
  groups = [np.flatnonzero(y == k) for k in np.unique(y)]
  size = min(batch_size, -(-max(len(rows) for rows in groups) // GROUP_ROWS) * GROUP_ROWS)
  results = [attack_codes(decode_fns[y[rows[0]]], logits_fn, z[rows], y[rows], (),
                          boxes[y[rows[0]]], spec, jax.random.fold_in(key, int(y[rows[0]])),
                          size, mesh) for rows in groups]
  order = np.argsort(np.concatenate(groups))
  return tuple(np.concatenate(parts)[order] for parts in zip(*results))


def class_capacity(rows: int, num_classes: int) -> int:
  """Rows per class attacked in a second half of `rows` rows: min(rows, 2 * rows / K + 5).

  With balanced classes a class exceeds it with probability < 1e-4 per batch (Fashion-MNIST:
  50 rows, K = 10, capacity 15); rows beyond it keep their clean image.
  """
  return min(rows, 2 * -(-rows // num_classes) + 5)


@dataclasses.dataclass(frozen=True)
class LearnedManifold:
  """The VAE-GANs `vaes` of `ds` as a Manifold. mesh, encode_batch_size: where and in what
  batches training codes are computed; projection_*: the settings of `project_onto_decoder`
  behind `distance`; class_agnostic: the on-manifold attack goes through the class-agnostic
  VAE-GAN (manifold kind "learned_agnostic") instead of the true class's."""
  ds: Dataset
  vaes: VAEGANs
  mesh: object
  encode_batch_size: int = 1000
  projection_steps: int = 100
  projection_lr: float = 0.1
  projection_restarts: int = 1
  class_agnostic: bool = False  # attack through the class-agnostic VAE-GAN (eps_agnostic)

  def codes(self, x, y: np.ndarray, batch_size: int, mesh) -> np.ndarray:
    """mu [N, d] of images x [N, ...] under the encoder of each row's class y."""
    mu = np.zeros((len(y), self.vaes.classes[0].box[0].shape[0]), np.float32)
    for k in np.unique(y):
      rows = np.flatnonzero(y == k)
      mu[rows] = parallel.map_in_batches(self.vaes.classes[k].encode_fn, (x[rows],), batch_size,
                                         mesh)
    return mu

  def class_decode(self, mu: np.ndarray, y: np.ndarray, batch_size: int, mesh) -> np.ndarray:
    """Images [N, ...] of codes mu [N, d] under the decoder of each row's class y."""
    images = None
    for k in np.unique(y):
      rows = np.flatnonzero(y == k)
      part = parallel.map_in_batches(self.vaes.classes[k].decode_fn, (mu[rows],), batch_size,
                                     mesh)
      images = np.zeros((len(y),) + part.shape[1:], part.dtype) if images is None else images
      images[rows] = part
    return images

  def attack(self, logits_fn, rows: np.ndarray, spec: attacks.AttackSpec, key: jax.Array,
             batch_size: int, mesh) -> OnManifold:
    """From z = mu of the true class's encoder (class_agnostic: of the class-agnostic encoder),
    codes with |mu| <= 2 only; x_on = dec(mu), on which "correct" is judged (docs/protocol.md#success-rates)."""
    x, y = np.asarray(self.ds.x_test[rows]), self.ds.y_test[rows]
    if self.class_agnostic:
      vae = self.vaes.agnostic
      mu = parallel.map_in_batches(vae.encode_fn, (x,), batch_size, mesh)
      x_on = parallel.map_in_batches(vae.decode_fn, (mu,), batch_size, mesh)
    else:
      mu = self.codes(x, y, batch_size, mesh)
      x_on = self.class_decode(mu, y, batch_size, mesh)
    keep = np.flatnonzero(np.asarray(within_prior(mu)))
    if self.class_agnostic:
      box = self.vaes.agnostic.box
      z_adv, x_adv, success = attack_codes(vae.decode_fn, logits_fn, mu[keep], y[keep], (), box,
                                           spec, key, batch_size, mesh)
      z = np.clip(mu[keep], np.asarray(box[0]), np.asarray(box[1]))
    else:
      classes = self.vaes.classes
      z_adv, x_adv, success = attack_with_class_decoders(
          [v.decode_fn for v in classes], [v.box for v in classes], logits_fn, mu[keep],
          y[keep], key=key, spec=spec, batch_size=batch_size, mesh=mesh)
      lo = np.stack([np.asarray(classes[k].box[0]) for k in y[keep]]).reshape(len(keep), -1)
      hi = np.stack([np.asarray(classes[k].box[1]) for k in y[keep]]).reshape(len(keep), -1)
      z = np.clip(mu[keep], lo, hi)
    return OnManifold(np.asarray(rows)[keep], x_on[keep], x_adv, success, z, z_adv)

  def project(self, images: np.ndarray, rows: np.ndarray, key: jax.Array, batch_size: int,
              mesh, init: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(codes [N, d], projections [N, ...]) of images onto the class-agnostic decoder, starting
    at the class-agnostic mu of each image, or at `init` [N, d] (a warm start)."""
    agnostic = self.vaes.agnostic
    z0 = (parallel.map_in_batches(agnostic.encode_fn, (images,), batch_size, mesh)
          if init is None else np.asarray(init))
    project = lambda xb, zb, k: project_onto_decoder(
        agnostic.decode_fn, xb, zb, key=k, steps=self.projection_steps, lr=self.projection_lr,
        restarts=self.projection_restarts)[:2]
    return parallel.map_in_batches(project, (images, z0), batch_size, mesh, key,
                                   desc="projections onto the learned manifold")

  def decode(self, codes: np.ndarray, rows: np.ndarray, batch_size: int, mesh) -> np.ndarray:
    """Images [N, ...] of codes [N, d] under the class-agnostic decoder (the one `project` uses;
    rows unused)."""
    del rows
    return parallel.map_in_batches(self.vaes.agnostic.decode_fn, (np.asarray(codes),),
                                   batch_size, mesh)

  def distance(self, images: np.ndarray, rows: np.ndarray, key: jax.Array, batch_size: int,
               mesh) -> np.ndarray:
    """Distance to the class-agnostic decoder, projecting from the class-agnostic mu."""
    _, projections = self.project(images, rows, key, batch_size, mesh)
    return np.linalg.norm((images - projections).reshape(len(images), -1), axis=1)

  def second_half(self, spec: attacks.AttackSpec, n: int):
    """Latent adversarial examples through the decoder of each row's true class; aux: the first
    n training rows' codes mu [n, d] under their class's encoder.

    The authors' "safe" option: a row whose code has any |mu_i| > 2 is attacked from the code of
    a random training row of its class whose code qualifies, so the whole second half is
    adversarial (a class without any qualifying code keeps its clean rows). Rows are grouped by
    class into K slots of `class_capacity` rows, so each decoder runs on its own rows only (a
    per-row choice of decoder would cost K decoders per row); rows beyond the capacity keep
    their clean image.
    """
    classes = self.vaes.classes
    num_classes = len(classes)
    variables = jax.tree.map(lambda *v: jnp.stack(v), *[v.variables["decoder"] for v in classes])
    box_lo = jnp.stack([v.box[0] for v in classes])
    box_hi = jnp.stack([v.box[1] for v in classes])
    decoder = classes[0].nets.decoder
    train = self.ds.first_n(n)
    mu = self.codes(train.x_train, train.y_train, self.encode_batch_size, self.mesh)
    pool, pool_size = qualifying_codes(mu, train.y_train, num_classes)

    def second_half(logits_fn, x, y, key, mu):
      capacity = class_capacity(x.shape[0], num_classes)
      slots = [jnp.nonzero(y == k, size=capacity, fill_value=0)[0] for k in range(num_classes)]
      filled = [jnp.arange(capacity) < jnp.sum(y == k) for k in range(num_classes)]
      rows, filled = jnp.concatenate(slots), jnp.concatenate(filled)
      slot_class = jnp.repeat(jnp.arange(num_classes), capacity)
      lo, hi = box_lo[slot_class], box_hi[slot_class]

      def decode_fn(z):  # z [K * capacity, d]: slot k * capacity + i uses decoder k.
        return jnp.concatenate([
            vaegan_models.make_decode_fn(decoder, jax.tree.map(lambda v: v[k], variables))(
                z[k * capacity:(k + 1) * capacity]) for k in range(num_classes)])

      draw_key, attack_key = jax.random.split(key)
      z0 = safe_codes(mu[rows], slot_class, pool, pool_size, draw_key)
      x_adv = attacks.latent_pgd(decode_fn, logits_fn, jnp.clip(z0, lo, hi), y[rows],
                                 key=attack_key, box=(lo, hi), **spec.options()).x_adv
      usable = filled & (pool_size[slot_class] > 0)
      target = jnp.where(usable, rows, x.shape[0])  # Out of range: dropped.
      return x.at[target].set(x_adv, mode="drop")

    return second_half, mu


def qualifying_codes(mu: np.ndarray, y: np.ndarray,
                     num_classes: int) -> tuple[jax.Array, jax.Array]:
  """(pool [K, P, d], size [K]): per class k the codes of its rows with every |mu_i| <= 2, in
  row order, padded with zeros to the largest class's count P (at least 1)."""
  ok = np.asarray(within_prior(mu))
  groups = [mu[ok & (y == k)] for k in range(num_classes)]
  largest = max(1, max(len(g) for g in groups))
  pool = np.zeros((num_classes, largest, mu.shape[1]), np.float32)
  for k, g in enumerate(groups):
    pool[k, :len(g)] = g
  return jnp.asarray(pool), jnp.asarray([len(g) for g in groups], jnp.int32)


def safe_codes(mu: jax.Array, labels: jax.Array, pool: jax.Array, pool_size: jax.Array,
               key: jax.Array) -> jax.Array:
  """The start codes [B, d] of on-manifold training: mu [B, d] where it qualifies (|mu_i| <= 2),
  else a code drawn uniformly from its class's qualifying ones (pool, pool_size of
  `qualifying_codes`; labels [B])."""
  size = pool_size[labels]
  pick = jnp.floor(jax.random.uniform(key, labels.shape) * size).astype(jnp.int32)
  drawn = pool[labels, jnp.minimum(pick, jnp.maximum(size - 1, 0))]
  return jnp.where(within_prior(mu)[:, None], mu, drawn)
