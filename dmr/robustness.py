"""Attacking one trained classifier: off-manifold (image space) and on-manifold (any
dmr.manifolds.Manifold) success rates on the first test images, as PAPER.md defines them.

Rates are computed over the correctly classified inputs: the paper's rate averages over restarts,
the `_any` rate counts an input as broken when any restart succeeds (robust-accuracy convention).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dmr import attacks, parallel
from dmr.manifolds import Manifold, OnManifold


class Rates(NamedTuple):
  success: float  # the paper's rate
  success_any: float  # worst case over restarts
  evaluated: int  # inputs attacked (after the |mu| <= 2 filter for learned manifolds)
  correct: int  # of those, correctly classified


def rates(success: np.ndarray, correct: np.ndarray) -> Rates:
  """Rates from success [B, R] per restart and correct [B] (see the module docstring)."""
  result = attacks.AttackResult(x_adv=None, success=success.any(1), success_per_restart=success.T,
                                loss=None)
  return Rates(float(attacks.success_rate(result, correct)),
               float(attacks.worst_case_success_rate(result, correct)),
               int(len(correct)), int(np.sum(correct)))


def _predict(logits_fn, x):
  return jnp.argmax(logits_fn(x), axis=-1)


def predict(logits_fn, x, batch_size: int, mesh) -> np.ndarray:
  """Labels [N] predicted for the rows of x."""
  return parallel.map_in_batches(jax.tree_util.Partial(_predict, logits_fn), (x,), batch_size,
                                 mesh)


@functools.partial(jax.jit, static_argnames="spec")
def _pgd(logits_fn, x, y, key, spec: attacks.AttackSpec):
  """x_adv [B, ...] and success [B, R] of attacks.pgd, box [0, 1]."""
  r = attacks.pgd(logits_fn, x, y, key=key, bounds=(0.0, 1.0), **spec.options())
  return r.x_adv, r.success_per_restart.T


def off_manifold(logits_fn, x: np.ndarray, y: np.ndarray, spec: attacks.AttackSpec,
                 key: jax.Array, batch_size: int, mesh) -> tuple[Rates, np.ndarray]:
  """The regular attack on images x [N, ...]; returns the rates and the adversarial examples
  [N, ...]."""
  attack = lambda xb, yb, k: _pgd(logits_fn, xb, yb, k, spec=spec)
  x_adv, success = parallel.map_in_batches(attack, (x, y), batch_size, mesh, key)
  correct = predict(logits_fn, x, batch_size, mesh) == y
  return rates(success, correct), x_adv


def on_manifold(logits_fn, manifold: Manifold, y_test: np.ndarray, rows: np.ndarray,
                spec: attacks.AttackSpec, key: jax.Array, batch_size: int,
                mesh) -> tuple[Rates, OnManifold]:
  """The manifold's on-manifold attack on test rows `rows`; "correct" is judged on the
  on-manifold images attacked (reconstructions, renderings)."""
  on = manifold.attack(logits_fn, rows, spec, key, batch_size, mesh)
  correct = predict(logits_fn, on.x_on, batch_size, mesh) == y_test[on.rows]
  return rates(on.success, correct), on
