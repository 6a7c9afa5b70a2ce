"""Attack optimizers as optax transformations that turn the loss gradient into an ASCENT update.

"sign": Madry et al.'s PGD, step_size times the steepest-ascent direction of the norm.
"adam": the paper's optimizer, Adam with learning rate step_size on the perturbation.
Both take the extra keyword arguments x_adv and bounds (the current point and the box) so the
L1 step can skip coordinates that sit on a face of the box. Both zero every non-finite gradient
coordinate and every non-finite update coordinate (`finite_or_zero`): a NaN or inf gradient
(e.g. sqrt preprocessing at 0) is a zero step there, never a NaN iterate.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from dmr.attacks import projections

# One L1 step moves the top 1/20 (5%) of the coordinates by |gradient|, at least one, as
# advertorch's SparseL1Descent (l1_sparsity=0.95).
L1_STEP_SHARE = 20


def finite_or_zero(values: jax.Array) -> jax.Array:
  """values with every NaN and +-inf replaced by 0 (a zero step on that coordinate)."""
  return jnp.where(jnp.isfinite(values), values, jnp.zeros_like(values))


def default_step_size(eps, optimizer: str, steps: int) -> float | jax.Array:
  """sign: 2.5 * eps / steps for every norm (Madry et al., the robustness library), so the
  iterates can cross the ball and back; adam: 0.005 for every norm, the paper's learning rate
  (it moves each coordinate by about 0.005 per step, independent of eps)."""
  if optimizer == "adam":
    return 0.005
  return 2.5 * eps / steps


def sparse_l1_direction(grad: jax.Array, movable: jax.Array) -> jax.Array:
  """Unit-L1 steepest-ascent direction restricted to the top 5% of |grad|. [N, ...].

  Each row moves sign(grad) on its k = ceil(D / 20) largest-|grad| coordinates among
  those `movable`, each by 1 / (number selected); ties at the k-th value are all selected.
  """
  flat = grad.reshape((grad.shape[0], -1))
  magnitude = jnp.where(movable.reshape(flat.shape), jnp.abs(flat), 0.0)
  k = -(-flat.shape[1] // L1_STEP_SHARE)
  kth_largest = jax.lax.top_k(magnitude, k)[0][:, -1:]
  chosen = (magnitude >= kth_largest) & (magnitude > 0)
  count = jnp.maximum(jnp.sum(chosen, axis=1, keepdims=True), 1)
  return (jnp.sign(flat) * chosen / count).reshape(grad.shape)


def steepest_ascent(grad: jax.Array, norm: str, movable: jax.Array | None = None) -> jax.Array:
  """The unit-`norm` direction of steepest ascent for gradient [N, ...] (sparse for L1).

  movable: bool [N, ...] of coordinates free to move (L1 only); None means all.
  """
  if norm == "linf":
    return jnp.sign(grad)
  if norm == "l2":  # Scaled by the largest |g_i| first, so sum(g * g) cannot overflow.
    tiny = jnp.finfo(grad.dtype).tiny
    grad = grad / jnp.maximum(projections.per_row(projections.lp_norm(grad, "linf"), grad), tiny)
    length = projections.per_row(projections.lp_norm(grad, "l2"), grad)
    return grad / jnp.maximum(length, tiny)
  return sparse_l1_direction(grad, jnp.ones(grad.shape, bool) if movable is None else movable)


def sign_ascent(norm: str, step_size) -> optax.GradientTransformationExtraArgs:
  """Update = step_size * steepest_ascent(grad); L1 ignores coordinates pushed into the box.
  Non-finite gradient coordinates do not move."""

  def update(grad, state, params=None, *, x_adv, bounds):
    del params
    grad = finite_or_zero(grad)
    movable = ~projections.at_box_face(x_adv, grad, bounds) if norm == "l1" else None
    return finite_or_zero(step_size * steepest_ascent(grad, norm, movable)), state

  return optax.GradientTransformationExtraArgs(lambda params: optax.EmptyState(), update)


def adam_ascent(norm: str, step_size) -> optax.GradientTransformationExtraArgs:
  """optax.adam with learning rate step_size on the negated gradient (it ignores the norm).
  Non-finite gradient coordinates enter Adam as 0; non-finite updates are dropped."""
  del norm
  sanitize = optax.stateless(lambda updates, params: jax.tree.map(finite_or_zero, updates))
  return optax.chain(sanitize, optax.scale(-1.0), optax.adam(step_size), sanitize)


_OPTIMIZERS = {"sign": sign_ascent, "adam": adam_ascent}
OPTIMIZERS = tuple(_OPTIMIZERS)


def make_optimizer(optimizer: str, norm: str, step_size) -> optax.GradientTransformationExtraArgs:
  """The attack optimizer named `optimizer` ("sign" | "adam"); updates ascend the loss."""
  return _OPTIMIZERS[optimizer](norm, step_size)


def projection_rounds(optimizer: str) -> int:
  """Box/ball projection rounds before each forward pass: 5 for the paper's Adam, else 1."""
  return 5 if optimizer == "adam" else 1
