"""The paper's training variants as the function that produces the second half of each batch.

`second_half(logits_fn, x, y, key, aux) -> x'` (see dmr.train.steps): x [B, H, W, C] and y [B]
are the second half of a batch, aux its per-example extras or None; logits_fn is the classifier
in inference mode (BatchNorm running statistics), attacked as in the paper.

| variant        | second half                                                      | aux          |
|----------------|------------------------------------------------------------------|--------------|
| normal         | (none: the clean batch)                                          | -            |
| off_adv        | regular L-inf adversarial examples                               | -            |
| on_adv_learned | the learned manifold's `second_half` (dmr.manifolds)             | its own      |
| on_adv_true    | the known manifold's `second_half` (dmr.manifolds)               | its own      |
| stn_augm       | random affine transforms within a ThetaRange                     | -            |
| stn_adv        | adversarial affine transforms from the identity within the range | -            |
"""
from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from dmr import attacks, geometry

# The manifold whose on-manifold adversarial examples each on_adv_* variant trains on.
MANIFOLD_OF = {"on_adv_learned": "learned", "on_adv_true": "true"}


def off_manifold(spec: attacks.AttackSpec):
  """Regular adversarial examples in image space, box [0, 1]."""

  def second_half(logits_fn, x, y, key, aux):
    return attacks.pgd(logits_fn, x, y, key=key, bounds=(0.0, 1.0), **spec.options()).x_adv

  return second_half


def stn_augmentation(theta_range: geometry.ThetaRange):
  """Random affine transforms with theta uniform in the whole range."""

  def second_half(logits_fn, x, y, key, aux):
    return geometry.transform(x, geometry.sample_theta(key, (x.shape[0],), *theta_range.box))

  return second_half


def stn_adversarial(spec: attacks.AttackSpec, theta_range: geometry.ThetaRange):
  """Adversarial affine transforms: theta from the identity, within spec.eps and the range."""
  identity = jnp.asarray(geometry.IDENTITY_THETA)

  def second_half(logits_fn, x, y, key, aux):
    theta0 = jnp.broadcast_to(identity, (x.shape[0], 6))
    render = functools.partial(geometry.transform, x)
    return attacks.latent_pgd(render, logits_fn, theta0, y, key=key, box=theta_range.box,
                              **spec.options()).x_adv

  return second_half


def second_half(variant: str, spec_of: Callable[[str], attacks.AttackSpec],
                theta_range: geometry.ThetaRange, manifolds: dict,
                n: int) -> tuple[Callable | None, np.ndarray | None]:
  """(second_half, aux [n, ...] or None) of `variant` for the first n training rows.

  spec_of(kind): the training attack of kind "off", "on" or "stn"; manifolds: {kind: Manifold}
  of the run (dmr.manifolds), of which on_adv_* use MANIFOLD_OF[variant].
  """
  if variant == "normal":
    return None, None
  if variant == "off_adv":
    return off_manifold(spec_of("off")), None
  if variant == "stn_augm":
    return stn_augmentation(theta_range), None
  if variant == "stn_adv":
    return stn_adversarial(spec_of("stn"), theta_range), None
  return manifolds[MANIFOLD_OF[variant]].second_half(spec_of("on"), n)


STRENGTH_BATCHES = 10  # Training batches on which `training_attack_strength` is measured.


@functools.partial(jax.jit, static_argnames="second_half")
def _second_half_outcome(second_half, logits_fn, x, y, key, aux):
  """Per row of a second half x [B, ...]: replaced (differs from x), fooled (misclassified
  after the replacement), L-inf and L2 size of the change."""
  x_new = second_half(logits_fn, x, y, key, aux)
  change = (x_new - x).reshape((x.shape[0], -1))
  linf = jnp.max(jnp.abs(change), axis=1)
  fooled = jnp.argmax(logits_fn(x_new), axis=-1) != y
  return linf > 0, fooled, linf, jnp.linalg.norm(change, axis=1)


def training_attack_strength(second_half, logits_fn, x, y, aux, key: jax.Array,
                             batch_size: int, batches: int = STRENGTH_BATCHES) -> dict:
  """The training attack against a classifier (logits_fn, e.g. the finished model), on the
  second halves of the first `batches` training batches of batch_size rows of (x, y, aux):

  train_attack_success: fraction of replaced rows misclassified afterwards;
  train_attack_linf, train_attack_l2: mean size of the change of the replaced rows (on_adv_*: the
    adversarial example against the training image it replaces);
  train_adversarial_share: mean fraction of each whole batch that is replaced (1/2 at most);
  train_adversarial_share_min: the smallest such fraction over the batches.
  """
  batch_size = min(batch_size, len(y))
  half = batch_size // 2
  shares, replaced_rows, fooled_rows, linf_rows, l2_rows = [], [], [], [], []
  for b in range(min(batches, len(y) // batch_size)):
    rows = np.arange(b * batch_size + half, (b + 1) * batch_size)
    replaced, fooled, linf, l2 = (np.asarray(a) for a in _second_half_outcome(
        second_half, logits_fn, jnp.asarray(np.asarray(x[rows])), jnp.asarray(y[rows]),
        jax.random.fold_in(key, b), None if aux is None else jnp.asarray(aux[rows])))
    shares.append(replaced.sum() / batch_size)
    replaced_rows.append(replaced)
    fooled_rows.append(fooled[replaced])
    linf_rows.append(linf[replaced])
    l2_rows.append(l2[replaced])
  mean = lambda parts: float(np.mean(np.concatenate(parts))) if np.concatenate(parts).size else 0.0
  return {"train_attack_success": mean(fooled_rows), "train_attack_linf": mean(linf_rows),
          "train_attack_l2": mean(l2_rows), "train_adversarial_share": float(np.mean(shares)),
          "train_adversarial_share_min": float(np.min(shares))}
