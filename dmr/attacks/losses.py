"""Per-example attack objectives (maximized by the attacks) and the success criterion.

All functions take logits [N, K] and integer labels [N] (and targets [N]) and return [N].
Larger is stronger for the attacker.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """-log softmax(logits)[label]. [N]."""
  true_logit = jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
  return jax.nn.logsumexp(logits, axis=1) - true_logit


def margin(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """max over other classes minus the label's logit; > 0 iff the label is not predicted. [N]."""
  true_logit = jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
  others = jnp.where(jax.nn.one_hot(labels, logits.shape[1], dtype=bool), -jnp.inf, logits)
  return jnp.max(others, axis=1) - true_logit


_TINY = 1e-12  # keeps the DLR ratios finite when the top logits tie


def _descending(logits: jax.Array) -> jax.Array:
  return -jnp.sort(-logits, axis=1)


def dlr(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Croce and Hein's (2020) Difference of Logits Ratio, invariant to shifting and scaling the
  logits: margin / (z_(1) - z_(3)), z_(k) the k-th largest logit; > 0 iff the label is not
  predicted. Needs K >= 3. [N]."""
  ranked = _descending(logits)
  return margin(logits, labels) / (ranked[:, 0] - ranked[:, 2] + _TINY)


def targeted_dlr(logits: jax.Array, labels: jax.Array, targets: jax.Array) -> jax.Array:
  """Targeted DLR: (z_t - z_y) / (z_(1) - (z_(3) + z_(4)) / 2), pushing the target t above the
  label y. Needs K >= 4. [N]."""
  ranked = _descending(logits)
  pick = lambda c: jnp.take_along_axis(logits, c[:, None], axis=1)[:, 0]
  scale = ranked[:, 0] - 0.5 * (ranked[:, 2] + ranked[:, 3]) + _TINY
  return (pick(targets) - pick(labels)) / scale


_LOSSES = {"ce": cross_entropy, "margin": margin}
LOSSES = tuple(_LOSSES)


def attack_loss(logits: jax.Array, labels: jax.Array, loss: str, targeted: bool) -> jax.Array:
  """The objective an attack maximizes. [N].

  Untargeted: `loss` ("ce" | "margin") of the true label. Targeted (labels are targets): the
  negated loss of the target, i.e. -ce(target) or logit(target) - max other logit.
  """
  value = _LOSSES[loss](logits, labels)
  return -value if targeted else value


def is_success(logits: jax.Array, labels: jax.Array, targeted: bool) -> jax.Array:
  """Untargeted: the prediction differs from the label; targeted: it equals the target. [N] bool.

  Never a success when a row's logits are not all finite (argmax of NaN means nothing) or its
  label lies outside [0, K).
  """
  hit = jnp.argmax(logits, axis=1) == labels
  valid = jnp.all(jnp.isfinite(logits), axis=1) & (labels >= 0) & (labels < logits.shape[1])
  return valid & (hit if targeted else ~hit)


def fools(logits_fn: Callable[[jax.Array], jax.Array], x_adv: jax.Array, labels: jax.Array,
          targeted: bool = False) -> jax.Array:
  """The success of x_adv [N, ...] judged afresh: a new forward pass of logits_fn on x_adv
  (finite, as given, in its own dtype), finite logits, and is_success. [N] bool."""
  finite = jnp.all(jnp.isfinite(x_adv.reshape((x_adv.shape[0], -1))), axis=1)
  return finite & is_success(logits_fn(x_adv), labels, targeted)
