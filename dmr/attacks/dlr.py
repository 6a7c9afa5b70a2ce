"""The Difference of Logits Ratio losses of Croce and Hein (2020), shift- and scale-invariant.

Logits [N, K], integer labels [N] (and targets [N]); every function returns [N]. Larger is
stronger for the attacker; > 0 iff the label is not predicted.
"""
from __future__ import annotations

import jax.numpy as jnp

from dmr.attacks import losses

_TINY = 1e-12  # keeps the ratio finite when the top logits tie


def dlr(logits, labels):
  """-(z_y - max_{i != y} z_i) / (z_(1) - z_(3)), z_(k) the k-th largest logit. Needs K >= 3."""
  ranked = -jnp.sort(-logits, axis=1)
  return losses.margin(logits, labels) / (ranked[:, 0] - ranked[:, 2] + _TINY)


def targeted_dlr(logits, labels, targets):
  """-(z_y - z_t) / (z_(1) - (z_(3) + z_(4)) / 2), pushing the target t above the label y.

  Needs K >= 4.
  """
  ranked = -jnp.sort(-logits, axis=1)
  pick = lambda c: jnp.take_along_axis(logits, c[:, None], axis=1)[:, 0]
  scale = ranked[:, 0] - 0.5 * (ranked[:, 2] + ranked[:, 3]) + _TINY
  return (pick(targets) - pick(labels)) / scale
