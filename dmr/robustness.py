"""Attacking one trained classifier: off-manifold (image space) and on-manifold (any
dmr.manifolds.Manifold) success rates on the first test images, as docs/protocol.md#success-rates defines them.

Rates are computed over the correctly classified inputs: the paper's rate averages over restarts,
the `_any` rate counts an input as broken when any restart succeeds (robust-accuracy convention).
Every success counted is re-verified first (`verify`): the stored adversarial example, through a
fresh forward pass, is misclassified, finite, inside the box [0, 1] and inside its eps-ball; an
input whose stored example fails the check counts as not fooled by any restart.

A cross-check (`cross_check`: dmr.attacks.evaluate's stronger attacks on the same images) guards
against an attack too weak for adversarially trained models; `union` counts an input broken when
either attack breaks it.
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


class Outcome(NamedTuple):
  """Per input of an attack: correct [N] (clean or on-manifold start classified correctly),
  success [N, R] per restart (re-verified), verified: correct inputs with a success (those the
  rates count) whose stored example passed `verify`, rejected: those that failed it. Every input
  failing `verify` loses its successes."""
  correct: np.ndarray
  success: np.ndarray
  verified: int
  rejected: int

  @property
  def rates(self) -> "Rates":
    return rates(self.success, self.correct)


def verify(logits_fn, x_adv: np.ndarray, y: np.ndarray, batch_size: int, mesh,
           inside: np.ndarray) -> np.ndarray:
  """bool [N]: x_adv [N, ...] is finite, inside [0, 1], misclassified by a fresh forward pass of
  logits_fn, and `inside` [N] its constraint set (the caller's eps-ball check)."""
  flat = np.asarray(x_adv).reshape(len(x_adv), -1)
  finite = np.all(np.isfinite(flat), axis=1)
  in_box = np.all((flat >= 0.0) & (flat <= 1.0), axis=1)
  fooled = predict(logits_fn, np.where(finite.reshape((-1,) + (1,) * (x_adv.ndim - 1)), x_adv,
                                       0.0).astype(np.float32), batch_size, mesh) != y
  return finite & in_box & fooled & np.asarray(inside, bool)


def within_ball(start: np.ndarray, end: np.ndarray, eps: float, tol: float = 1e-5) -> np.ndarray:
  """bool [N]: max |end - start| <= eps (+ tol for float32 rounding) per row."""
  change = np.abs(np.asarray(end, np.float64) - np.asarray(start, np.float64))
  return np.max(change.reshape(len(change), -1), axis=1) <= eps + tol


def verified_outcome(logits_fn, x_adv, y, correct, success, inside, batch_size,
                     mesh) -> Outcome:
  """The Outcome of an attack whose stored examples x_adv [N, ...] (one per input, its strongest
  restart) claim success [N, R]; inputs failing `verify` keep no success."""
  success, correct = np.asarray(success, bool), np.asarray(correct, bool)
  counted = success.any(axis=1) & correct
  ok = verify(logits_fn, x_adv, y, batch_size, mesh, inside)
  return Outcome(correct, success & ok[:, None], int(np.sum(counted & ok)),
                 int(np.sum(counted & ~ok)))


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


def off_manifold_outcome(logits_fn, x: np.ndarray, y: np.ndarray, spec: attacks.AttackSpec,
                         key: jax.Array, batch_size: int, mesh,
                         desc: str | None = "off-manifold attack") -> tuple[Outcome, np.ndarray]:
  """The regular attack on images x [N, ...]; returns its verified Outcome and the adversarial
  examples [N, ...]; desc: the progress bar's label."""
  attack = lambda xb, yb, k: _pgd(logits_fn, xb, yb, k, spec=spec)
  x_adv, success = parallel.map_in_batches(attack, (x, y), batch_size, mesh, key, desc=desc)
  correct = predict(logits_fn, x, batch_size, mesh) == y
  return verified_outcome(logits_fn, x_adv, y, correct, success, within_ball(x, x_adv, spec.eps),
                          batch_size, mesh), x_adv


def off_manifold(logits_fn, x: np.ndarray, y: np.ndarray, spec: attacks.AttackSpec,
                 key: jax.Array, batch_size: int, mesh,
                 desc: str | None = "off-manifold attack") -> tuple[Rates, np.ndarray]:
  """The regular attack on images x [N, ...]; returns the rates and the adversarial examples
  [N, ...]."""
  outcome, x_adv = off_manifold_outcome(logits_fn, x, y, spec, key, batch_size, mesh, desc)
  return outcome.rates, x_adv


# The cross-check's budget, AutoAttack's: APGD iterations per run, Square queries.
CROSS_CHECK_STEPS, CROSS_CHECK_QUERIES = 100, 5000


def cross_check(logits_fn, x: np.ndarray, y: np.ndarray, names: tuple[str, ...], eps: float,
                norm: str, key: jax.Array, batch_size: int) -> np.ndarray:
  """bool [N]: image x[i] [N, ...] is classified correctly and one of dmr.attacks.evaluate's
  attacks `names` breaks it inside the `norm` eps-ball (re-verified by evaluate)."""
  ev = attacks.evaluate(logits_fn, x, y, key=key, eps=eps, norm=norm, attacks=tuple(names),
                        batch_size=batch_size, steps=CROSS_CHECK_STEPS,
                        square_queries=CROSS_CHECK_QUERIES)
  return ev.clean_correct & ~ev.robust


def union(success: np.ndarray, cross: np.ndarray) -> np.ndarray:
  """bool [N, R]: restart r of the paper's attack (success [N, R]) or the cross-check (cross [N])
  broke input i; an input the cross-check breaks counts as broken in every restart, so both the
  paper's rate and the any-restart rate count the stronger of the two attacks."""
  return np.asarray(success, bool) | np.asarray(cross, bool)[:, None]


def on_manifold(logits_fn, manifold: Manifold, y_test: np.ndarray, rows: np.ndarray,
                spec: attacks.AttackSpec, key: jax.Array, batch_size: int,
                mesh) -> tuple[Rates, OnManifold]:
  """The manifold's on-manifold attack on test rows `rows`; "correct" is judged on the
  on-manifold images attacked (reconstructions, renderings)."""
  outcome, on = on_manifold_outcome(logits_fn, manifold, y_test, rows, spec, key, batch_size,
                                    mesh)
  return outcome.rates, on


def on_manifold_outcome(logits_fn, manifold: Manifold, y_test: np.ndarray, rows: np.ndarray,
                        spec: attacks.AttackSpec, key: jax.Array, batch_size: int,
                        mesh) -> tuple[Outcome, OnManifold]:
  """The manifold's on-manifold attack on test rows `rows` with its verified Outcome over the
  rows it evaluates (on.rows); the eps-ball is checked on the codes (on.z, on.z_adv)."""
  on = manifold.attack(logits_fn, rows, spec, key, batch_size, mesh)
  y = y_test[on.rows]
  correct = predict(logits_fn, on.x_on, batch_size, mesh) == y
  inside = within_ball(on.z, on.z_adv, spec.eps)
  return verified_outcome(logits_fn, on.x_adv, y, correct, on.success, inside, batch_size,
                          mesh), on
