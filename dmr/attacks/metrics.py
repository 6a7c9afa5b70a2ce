"""Success rates of an attack result over the correctly classified inputs.

`result` is an AttackResult or LatentAttackResult (success [B], success_per_restart [R, B]);
`correct` is bool [B]: the clean input is classified correctly. With no correct input the
rates over correct inputs are nan.
"""
from __future__ import annotations

import jax.numpy as jnp


def success_rate(result, correct):
  """The paper's rate: successful (input, restart) pairs / (correct inputs x restarts)."""
  correct = jnp.asarray(correct, bool)
  per_restart = result.success_per_restart & correct[None, :]
  pairs = correct.sum() * result.success_per_restart.shape[0]
  return jnp.where(pairs > 0, per_restart.sum() / jnp.maximum(pairs, 1), jnp.nan)


def worst_case_success_rate(result, correct):
  """Fraction of correct inputs that some restart fools."""
  correct = jnp.asarray(correct, bool)
  count = correct.sum()
  return jnp.where(count > 0, (result.success & correct).sum() / jnp.maximum(count, 1), jnp.nan)


def robust_accuracy(result, correct):
  """Fraction of ALL inputs that are correct and fooled by no restart (0 <= it <= accuracy)."""
  correct = jnp.asarray(correct, bool)
  return jnp.mean(correct & ~result.success)
