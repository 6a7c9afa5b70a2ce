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
