"""The paper's training variants as the function that produces the second half of each batch.

`second_half(params, batch_stats, x, y, key, aux) -> x'` (see dmr.train.steps): x [B, H, W, C]
and y [B] are the second half of a batch, aux its per-example extras or None. The classifier is
attacked in inference mode (BatchNorm running statistics), as in the paper.

| variant        | second half                                                      | aux          |
|----------------|------------------------------------------------------------------|--------------|
| normal         | (none: the clean batch)                                          | -            |
| off_adv        | regular L-inf adversarial examples                               | -            |
| on_adv_learned | decoded latent adversarial examples of the class's VAE-GAN       | codes mu     |
| on_adv_true    | renderings of adversarial theta of the known FONTS manifold      | row indices  |
| stn_augm       | random affine transforms within a ThetaRange                     | -            |
| stn_adv        | adversarial affine transforms from the identity within the range | -            |
"""
from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dmr import attacks, geometry
from dmr.fonts_manifold import make_decode_fn
from dmr.train.steps import make_logits_fn


def _attack_options(cfg: ml_collections.ConfigDict) -> dict:
  """The paper's training attack: all steps, the highest-loss iterate, one restart."""
  return dict(steps=cfg.steps, step_size=cfg.step_size, optimizer=cfg.optimizer, init=cfg.init,
              restarts=1, early_stop=False, unroll=jax.default_backend() == "cpu")


def off_manifold(model: nn.Module, cfg: ml_collections.ConfigDict):
  """Regular adversarial examples: L-inf eps = cfg.off_eps in image space, box [0, 1]."""

  def second_half(params, batch_stats, x, y, key, aux):
    logits_fn = make_logits_fn(model, params, batch_stats)
    return attacks.pgd(logits_fn, x, y, key=key, eps=cfg.off_eps, norm="linf",
                       bounds=(0.0, 1.0), **_attack_options(cfg)).x_adv

  return second_half


def class_capacity(rows: int, num_classes: int) -> int:
  """Rows per class attacked in a second half of `rows` rows: min(rows, 2 * rows / K + 5).

  With balanced classes a class exceeds it with probability < 1e-4 per batch (Fashion-MNIST:
  50 rows, K = 10, capacity 15); rows beyond it keep their clean image.
  """
  return min(rows, 2 * -(-rows // num_classes) + 5)


def on_manifold_learned(model: nn.Module, cfg: ml_collections.ConfigDict, decoder_apply: Callable,
                        decoder_variables, box_lo: jax.Array, box_hi: jax.Array):
  """Latent adversarial examples through the decoder of each row's true class.

  decoder_apply(variables, z [n, d]) -> images; decoder_variables: the K class decoders'
  variables stacked on a leading axis; box_lo, box_hi [K, d]: per-class range of the training
  codes. aux: the rows' codes mu [B, d] under their class's encoder. Rows are grouped by class
  into K slots of `class_capacity` rows, so each decoder runs on its own rows only (a per-row
  choice of decoder would cost K decoders per row); rows with any |mu_i| > 2 (the paper attacks
  only codes with |mu| <= 2) or beyond the capacity keep their clean image.
  """
  num_classes = box_lo.shape[0]

  def second_half(params, batch_stats, x, y, key, mu):
    logits_fn = make_logits_fn(model, params, batch_stats)
    capacity = class_capacity(x.shape[0], num_classes)
    slots = [jnp.nonzero(y == k, size=capacity, fill_value=0)[0] for k in range(num_classes)]
    filled = [jnp.arange(capacity) < jnp.sum(y == k) for k in range(num_classes)]
    rows, filled = jnp.concatenate(slots), jnp.concatenate(filled)
    slot_class = jnp.repeat(jnp.arange(num_classes), capacity)
    lo, hi = box_lo[slot_class], box_hi[slot_class]

    def decode_fn(z):  # z [K * capacity, d]: slot k * capacity + i uses decoder k.
      parts = [decoder_apply(jax.tree.map(lambda v: v[k], decoder_variables),
                             z[k * capacity:(k + 1) * capacity]) for k in range(num_classes)]
      return jnp.concatenate(parts)

    z0 = jnp.clip(mu[rows], lo, hi)
    x_adv = attacks.latent_pgd(decode_fn, logits_fn, z0, y[rows], key=key, eps=cfg.on_eps,
                               norm="linf", box=(lo, hi), **_attack_options(cfg)).x_adv
    usable = filled & jnp.all(jnp.abs(mu[rows]) <= 2.0, axis=1)
    target = jnp.where(usable, rows, x.shape[0])  # Out of range: dropped.
    return x.at[target].set(x_adv, mode="drop")

  return second_half


def on_manifold_true(model: nn.Module, cfg: ml_collections.ConfigDict, prototypes: np.ndarray,
                     theta: np.ndarray, theta_range: geometry.ThetaRange):
  """Adversarial theta on the known FONTS manifold, around each row's own theta.

  prototypes [N, H, W, 1] and theta [N, 6] of the training rows; aux: the rows' indices [B].
  """
  prototypes, theta = jnp.asarray(prototypes), jnp.asarray(theta)

  def second_half(params, batch_stats, x, y, key, index):
    logits_fn = make_logits_fn(model, params, batch_stats)
    decode_fn = make_decode_fn(prototypes[index])
    return attacks.latent_pgd(decode_fn, logits_fn, theta[index], y, key=key, eps=cfg.on_eps,
                              norm="linf", box=theta_range.box, **_attack_options(cfg)).x_adv

  return second_half


def stn_augmentation(theta_range: geometry.ThetaRange):
  """Random affine transforms with theta uniform in the whole range."""

  def second_half(params, batch_stats, x, y, key, aux):
    return geometry.transform(x, geometry.sample_theta(key, (x.shape[0],), *theta_range.box))

  return second_half


def stn_adversarial(model: nn.Module, cfg: ml_collections.ConfigDict,
                    theta_range: geometry.ThetaRange):
  """Adversarial affine transforms: theta from the identity, L-inf eps = cfg.stn_eps, in range."""
  identity = jnp.asarray(geometry.IDENTITY_THETA)

  def second_half(params, batch_stats, x, y, key, aux):
    logits_fn = make_logits_fn(model, params, batch_stats)
    theta0 = jnp.broadcast_to(identity, (x.shape[0], 6))
    return attacks.latent_pgd(make_decode_fn(x), logits_fn, theta0, y, key=key,
                              eps=cfg.stn_eps, norm="linf", box=theta_range.box,
                              **_attack_options(cfg)).x_adv

  return second_half
