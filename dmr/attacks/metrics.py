"""Success rates of an attack result over the correctly classified inputs.

Two conventions, side by side (with R restarts and C correctly classified inputs):

  success_rate             the paper's rate: the average over restarts, i.e. successful
                           (input, restart) pairs / (C * R). One restart fooling an input counts
                           1 / R. It is what Stutz et al. report; it grows with the attack's
                           per-restart strength, not with the number of restarts.
  worst_case_success_rate  the robust-accuracy convention of the robustness literature: an
                           input counts as broken when its returned x_adv fools the model (some
                           restart succeeded), i.e. broken inputs / C. It grows with restarts.
  robust_accuracy          fraction of ALL B inputs that are classified correctly and not
                           broken: accuracy * (1 - worst_case_success_rate).

`result` is an AttackResult or LatentAttackResult (success [B], success_per_restart [R, B]);
`correct` is bool [B]: the clean input is classified correctly. With no correct input the
rates over correct inputs are nan.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def success_rate(result: Any, correct: jax.Array) -> jax.Array:
  """The paper's rate, averaged over restarts: successful (input, restart) pairs over the
  correct inputs / (correct inputs x restarts). A scalar in [0, 1], or nan."""
  correct = jnp.asarray(correct, bool)
  per_restart = result.success_per_restart & correct[None, :]
  pairs = correct.sum() * result.success_per_restart.shape[0]
  return jnp.where(pairs > 0, per_restart.sum() / jnp.maximum(pairs, 1), jnp.nan)


def worst_case_success_rate(result: Any, correct: jax.Array) -> jax.Array:
  """The worst-case (robust-accuracy) convention: fraction of correct inputs whose returned
  x_adv fools the model (result.success). A scalar in [0, 1], or nan; >= success_rate."""
  correct = jnp.asarray(correct, bool)
  count = correct.sum()
  return jnp.where(count > 0, (result.success & correct).sum() / jnp.maximum(count, 1), jnp.nan)


def robust_accuracy(result: Any, correct: jax.Array) -> jax.Array:
  """Fraction of ALL inputs that are correct and not fooled by the returned x_adv
  (0 <= it <= accuracy; = accuracy * (1 - worst_case_success_rate))."""
  correct = jnp.asarray(correct, bool)
  return jnp.mean(correct & ~result.success)
