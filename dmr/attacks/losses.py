"""Per-example attack objectives (maximized by the attacks) and the success criterion.

All functions take logits [N, K] and integer labels [N] and return [N].
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

def cross_entropy(logits, labels):
  """-log softmax(logits)[label]. [N]."""
  true_logit = jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
  return jax.nn.logsumexp(logits, axis=1) - true_logit


def margin(logits, labels):
  """max over other classes minus the label's logit; > 0 iff the label is not predicted. [N]."""
  true_logit = jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
  others = jnp.where(jax.nn.one_hot(labels, logits.shape[1], dtype=bool), -jnp.inf, logits)
  return jnp.max(others, axis=1) - true_logit


_LOSSES = {"ce": cross_entropy, "margin": margin}
LOSSES = tuple(_LOSSES)


def attack_loss(logits, labels, loss: str, targeted: bool):
  """The objective an attack maximizes. [N].

  Untargeted: `loss` ("ce" | "margin") of the true label. Targeted (labels are targets): the
  negated loss of the target, i.e. -ce(target) or logit(target) - max other logit.
  """
  value = _LOSSES[loss](logits, labels)
  return -value if targeted else value


def is_success(logits, labels, targeted: bool):
  """Untargeted: the prediction differs from the label; targeted: it equals the target. [N] bool."""
  hit = jnp.argmax(logits, axis=1) == labels
  return hit if targeted else ~hit
