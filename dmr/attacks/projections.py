"""Lp norms, projections onto Lp balls and boxes, and the paper's alternating projection.

Every function acts per example on a batch [N, ...]: the norm of a row is taken over all
axes but the first. `eps` is a scalar; `bounds` is None (no box) or (lo, hi), each a scalar or an
array broadcastable to one row.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

Bounds = tuple[Any, Any] | None  # (lo, hi), each a scalar or an array broadcastable to a row


def _rows(v):
  """[N, ...] -> [N, D]."""
  return v.reshape((v.shape[0], -1))


def per_row(s: jax.Array, like: jax.Array) -> jax.Array:
  """Per-row values s [N] -> [N, 1, ..., 1], broadcastable against `like` [N, ...]."""
  return s.reshape((-1,) + (1,) * (like.ndim - 1))


_ROW_NORMS = {
    "linf": lambda flat: jnp.max(jnp.abs(flat), axis=1),
    "l2": lambda flat: jnp.sqrt(jnp.sum(flat * flat, axis=1)),
    "l1": lambda flat: jnp.sum(jnp.abs(flat), axis=1),
}
NORMS = tuple(_ROW_NORMS)


def lp_norm(v: jax.Array, norm: str) -> jax.Array:
  """The `norm` ("linf" | "l2" | "l1") of each row of v [N, ...]. Returns [N]."""
  return _ROW_NORMS[norm](_rows(v))


def project_linf(v: jax.Array, eps) -> jax.Array:
  """Euclidean projection of each row of v [N, ...] onto {||.||_inf <= eps}."""
  return jnp.clip(v, -eps, eps)


def project_l2(v: jax.Array, eps) -> jax.Array:
  """Euclidean projection of each row of v [N, ...] onto {||.||_2 <= eps}."""
  norm = lp_norm(v, "l2")
  scale = jnp.minimum(1.0, eps / jnp.maximum(norm, jnp.finfo(v.dtype).tiny))
  return v * per_row(scale, v)


def project_l1(v: jax.Array, eps) -> jax.Array:
  """Euclidean projection of each row of v [N, ...] onto {||.||_1 <= eps}.

  The sort-based algorithm of Duchi et al. (2008): soft-threshold |v| at the theta that makes the
  L1 norm exactly eps; rows already inside the ball are returned unchanged. O(D log D) per row.
  """
  flat = _rows(v)
  magnitude = jnp.abs(flat)
  descending = -jnp.sort(-magnitude, axis=1)
  excess = jnp.cumsum(descending, axis=1) - eps            # [N, D]
  rank = jnp.arange(1, flat.shape[1] + 1, dtype=flat.dtype)
  support = jnp.sum(descending * rank > excess, axis=1)    # rho >= 1 whenever ||v||_1 > eps
  theta = jnp.take_along_axis(excess, support[:, None] - 1, axis=1) / support[:, None]
  projected = jnp.sign(flat) * jnp.maximum(magnitude - theta, 0.0)
  inside = jnp.sum(magnitude, axis=1, keepdims=True) <= eps
  return jnp.where(inside, flat, projected).reshape(v.shape)


BISECTION_ROUNDS = 40  # project_l1_box: halvings of the threshold's bracket (float32 exact)


def project_l1_box(v: jax.Array, x: jax.Array, eps, bounds: Bounds) -> jax.Array:
  """Euclidean projection of each row of v [N, ...] onto {d: ||d||_1 <= eps, x + d in bounds}.

  d_i = sign(v_i) min(max(|v_i| - lam, 0), c_i), c_i the room from x_i to the box face v_i
  points at, with the threshold lam >= 0 found by bisection so that ||d||_1 <= eps (equal when
  the ball is active). Unlike project_l1 followed by a clip, the result is the exact projection
  onto the intersection. [N, ...].
  """
  flat = _rows(v)
  if bounds is None:
    room = jnp.full(flat.shape, jnp.inf, flat.dtype)
  else:
    lo, hi = bounds
    room = _rows(jnp.where(v >= 0, hi - x, x - lo))
  room = jnp.maximum(room, 0.0)
  magnitude = jnp.abs(flat)
  shrunk = lambda lam: jnp.clip(magnitude - lam[:, None], 0.0, room)
  l1 = lambda lam: jnp.sum(shrunk(lam), axis=1)

  def halve(_, bracket):
    low, high = bracket
    mid = 0.5 * (low + high)
    over = l1(mid) > eps
    return jnp.where(over, mid, low), jnp.where(over, high, mid)

  zero = jnp.zeros(flat.shape[:1], flat.dtype)
  _, high = jax.lax.fori_loop(0, BISECTION_ROUNDS, halve, (zero, jnp.max(magnitude, axis=1)))
  lam = jnp.where(l1(zero) <= eps, zero, high)
  return (jnp.sign(flat) * shrunk(lam)).reshape(v.shape)


def project_ball(v: jax.Array, eps, norm: str) -> jax.Array:
  """Euclidean projection of each row of v [N, ...] onto the `norm` ball of radius eps."""
  return {"linf": project_linf, "l2": project_l2, "l1": project_l1}[norm](v, eps)


def clip_to_box(x: jax.Array, bounds: Bounds) -> jax.Array:
  """x clipped into the box bounds = (lo, hi); x unchanged when bounds is None."""
  if bounds is None:
    return x
  lo, hi = bounds
  return jnp.clip(x, lo, hi)


def project_perturbation(delta: jax.Array, x: jax.Array, eps, norm: str, bounds: Bounds,
                         rounds: int = 1) -> jax.Array:
  """Makes x + delta feasible: ||delta|| <= eps and x + delta inside `bounds`. [N, ...].

  Alternates `rounds` times the eps-ball projection and the box clip (the paper's optimizer uses
  5 rounds). Each round ends with the box: with x inside the box, clipping only shrinks every
  |delta_i| towards 0, so both constraints hold exactly after any number of rounds.
  """
  for _ in range(rounds):
    delta = project_ball(delta, eps, norm)
    delta = clip_to_box(x + delta, bounds) - x
  return delta


def at_box_face(x: jax.Array, direction: jax.Array, bounds: Bounds) -> jax.Array:
  """True [N, ...] where x sits on a face of the box and `direction` points out of it."""
  if bounds is None:
    return jnp.zeros(x.shape, bool)
  lo, hi = bounds
  return ((x >= hi) & (direction > 0)) | ((x <= lo) & (direction < 0))


def round_toward(v: jax.Array, centre: jax.Array, dtype) -> jax.Array:
  """v [N, ...] rounded to the nearest value of `dtype` between centre and v (toward centre).

  v and centre are in a wider float dtype and centre is representable in `dtype`; the result
  keeps v's dtype, holds values of `dtype`, and |result - centre| <= |v - centre| per coordinate.
  """
  if jnp.dtype(dtype) == v.dtype:
    return v
  rounded = v.astype(dtype)
  back = rounded.astype(v.dtype)
  past = jnp.where(v >= centre, back > v, back < v)
  return jnp.where(past, jnp.nextafter(rounded, centre.astype(dtype)), rounded).astype(v.dtype)


def _within(v, eps, norm: str):
  """Rows of v [N, ...] whose `norm` stays <= eps under any summation order. [N] bool.

  L-inf involves no sum; for L2 and L1 a float sum of D terms may differ by D ulps between
  orders (numpy's pairwise sum vs XLA's), so those rows must be below eps * (1 - (D + 2) u).
  """
  if norm == "linf":
    return lp_norm(v, norm) <= eps
  slack = (_rows(v).shape[1] + 2) * jnp.finfo(v.dtype).eps / 2
  return lp_norm(v, norm) <= eps * (1 - slack)


def feasible_point(x: jax.Array, delta: jax.Array, eps, norm: str, bounds: Bounds,
                   dtype) -> jax.Array:
  """The point x + delta made exactly feasible in `dtype`. [N, ...] in x's dtype.

  x [N, ...] holds values of `dtype` inside `bounds`; delta is (nearly) feasible, e.g. from
  project_perturbation. The result holds values of `dtype`, lies inside `bounds` and between
  x and x + delta per coordinate, and lp_norm(result - x) <= eps evaluated in x's dtype in any
  summation order. Rounding (x + delta, then toward x in `dtype`) can overshoot eps by an ulp;
  such rows retry with delta shrunk by (D + 2) u times 2 and 8, and finally fall back to x.
  The L-inf ball is a box, so there each coordinate retries alone: no row reductions, which in
  an attack's loop body cost about a fifth of a gradient step on XLA:CPU
  (benchmarks/pgd_overhead.py).
  """
  slack = (_rows(x).shape[1] + 2) * jnp.finfo(x.dtype).eps / 2
  shrinks = (0.0, 2 * slack, 8 * slack)
  candidate = lambda shrink: round_toward(clip_to_box(x + (1 - shrink) * delta, bounds), x, dtype)
  if norm == "linf":
    point = x
    for shrink in reversed(shrinks):  # The least shrunk candidate within eps is written last.
      moved = candidate(shrink)
      point = jnp.where(jnp.abs(moved - x) <= eps, moved, point)
    return point
  point, done = x, jnp.zeros(x.shape[0], bool)
  for shrink in shrinks:
    moved = candidate(shrink)
    take = ~done & _within(moved - x, eps, norm)
    point, done = jnp.where(per_row(take, x), moved, point), done | take
  return point
