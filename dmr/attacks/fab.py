"""FAB-T: the targeted Fast Adaptive Boundary attack (Croce and Hein 2020), L-inf and L2.

FAB looks for the adversarial example closest to x. Per input and target class t (the classes
ranked 2, 3, ... by the clean logits, as AutoAttack's FAB-T), one run of `steps` iterations
from x_1 = x (restarts after the first start at a random point at distance eps / 2):
  - linearise f(z) = logit_t(z) - logit_y(z) at x_k: the boundary is {z: g.(z - x_k) = -f(x_k)}
    with g the input gradient of f;
  - d_1, d_2: the smallest (in the attack norm) steps from x_k and from x onto that hyperplane
    that stay inside the box (boundary_step);
  - x_{k+1} = clip((x_k + eta d_1) (1 - a) + (x + eta d_2) a) with the bias towards x
    a = min(|d_1| / (|d_1| + |d_2|), alpha_max) and the overshoot eta;
  - when x_{k+1} fools the model it is remembered if closer to x than the best so far, and the
    iterate moves back towards x: x_{k+1} = x + beta (x_{k+1} - x).
With a radius eps (as in an evaluation), a target run attacks only the rows not yet broken
within eps, and the returned x_adv is the closest adversarial point found, made exactly
feasible in the ball and the box in the input dtype (else the projection of it, or x); with
eps=None (the minimum-norm attack) every run attacks every row and x_adv is the closest
adversarial point found, in the box. As every dmr attack, success means a fresh forward pass of
the returned x_adv fools the model.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dmr.attacks import losses, projections, validation
from dmr.attacks._execution import as_pytree_fn, inspect_model, resolve_stepping
from dmr.attacks.projected_gradient import LogitsFn, widen
from dmr.attacks.validation import check_model
from dmr.models import conv_rewrite

NORMS = ("linf", "l2")
BISECTIONS = 40   # halvings of the bracket around the boundary step's scale


@dataclasses.dataclass(frozen=True)
class FABSpec:
  """The static options of `fab`; dtype: the name of the input dtype, which the model sees."""
  norm: str = "linf"
  steps: int = 100
  restarts: int = 1
  target_classes: int = 9
  alpha_max: float = 0.1
  eta: float = 1.05
  beta: float = 0.9
  fast_convs: bool = False
  dtype: str = "float32"

  @property
  def runs(self) -> int:
    return self.target_classes * self.restarts


class FABResult(NamedTuple):
  """x_adv [B, ...] in the input dtype, success [B], success_per_restart [1, B] (success),
  loss [B]: minus `distance`; distance [B]: norm of the closest adversarial point found
  (inf where none; it may exceed eps, x_adv never does)."""
  x_adv: jax.Array
  success: jax.Array
  success_per_restart: jax.Array
  loss: jax.Array
  distance: jax.Array


def _rows(v):
  return v.reshape((v.shape[0], -1))


def boundary_step(t, w, c, lo, hi, norm: str):
  """The smallest step d [N, D] (in `norm`, "linf" | "l2") with w.d = c and lo <= t + d <= hi.

  t, w [N, D]; c [N]; lo, hi broadcastable to [N, D] (+-inf: no box). Coordinate i moves by
  d_i = sign(c w_i) m_i with m_i = min(mu v_i, room_i): v_i = 1 (linf) or |w_i| (l2), room_i the
  distance to the box face it moves towards, and mu >= 0 solving sum |w_i| m_i = |c| (bisection
  on mu, then exact on the bracket's set of clipped coordinates). When the box does not allow
  w.d = c, every coordinate moves to its face (the closest reachable point of the hyperplane's
  side).
  """
  magnitude = jnp.abs(w)
  toward = jnp.sign(c)[:, None] * jnp.sign(w)
  room = jnp.where(toward > 0, hi - t, t - lo)
  room = jnp.where(magnitude > 0, jnp.maximum(room, 0.0), 0.0)
  rate = jnp.ones_like(w) if norm == "linf" else magnitude
  need = jnp.abs(c)
  gain = lambda mu: jnp.sum(magnitude * jnp.minimum(mu[:, None] * rate, room), axis=1)
  breaks = jnp.where(rate > 0, room / jnp.where(rate > 0, rate, 1.0), 0.0)
  free_mu = need / jnp.maximum(jnp.sum(magnitude * rate, axis=1), jnp.finfo(w.dtype).tiny)
  finite = jnp.where(jnp.isfinite(breaks), breaks, 0.0)
  upper = jnp.maximum(jnp.max(finite, axis=1), free_mu)

  def halve(_, bracket):
    low, high = bracket
    mid = 0.5 * (low + high)
    below = gain(mid) < need
    return jnp.where(below, mid, low), jnp.where(below, high, mid)

  low, _ = jax.lax.fori_loop(0, BISECTIONS, halve, (free_mu, upper))
  clipped = breaks <= low[:, None]
  fixed = jnp.sum(jnp.where(clipped, magnitude * room, 0.0), axis=1)
  slope = jnp.sum(jnp.where(clipped, 0.0, magnitude * rate), axis=1)
  mu = jnp.maximum((need - fixed) / jnp.maximum(slope, jnp.finfo(w.dtype).tiny), low)
  reachable = jnp.sum(magnitude * room, axis=1) > need
  step = jnp.where(reachable[:, None], jnp.minimum(mu[:, None] * rate, room), room)
  return jnp.sign(c)[:, None] * jnp.sign(w) * step


def _box(x, bounds):
  """(lo, hi) as arrays broadcastable to x [N, ...] (+-inf without a box)."""
  if bounds is None:
    return jnp.full((1,) + x.shape[1:], -jnp.inf, x.dtype), jnp.full((1,) + x.shape[1:],
                                                                        jnp.inf, x.dtype)
  return tuple(jnp.broadcast_to(jnp.asarray(b, x.dtype), x.shape[1:])[None] for b in bounds)


def _targets(logits_fn, x, y, spec: FABSpec):
  """[target_classes, B]: per row, the classes other than y ranked 2, 3, ... by clean logits."""
  logits = logits_fn(x.astype(spec.dtype)).astype(jnp.float32)
  others = jnp.where(jax.nn.one_hot(y, logits.shape[1], dtype=bool), -jnp.inf, logits)
  return jnp.argsort(-others, axis=1)[:, :spec.target_classes].T


class _State(NamedTuple):
  """Per row: the current iterate x_k, the closest adversarial point so far and its distance."""
  point: jax.Array
  best: jax.Array
  distance: jax.Array


def _initial(x):
  return _State(x, x, jnp.full(x.shape[0], jnp.inf, jnp.float32))


def _run_start(x, key, restart, eps, bounds, spec: FABSpec):
  """x for a run's first restart, else a random point at distance eps / 2 from x, in the box."""
  if eps is None:
    return x
  if spec.norm == "linf":
    noise = jax.random.uniform(key, x.shape, x.dtype, -1.0, 1.0)
  else:
    noise = jax.random.normal(key, x.shape, x.dtype)
  scale = 0.5 * eps / jnp.maximum(projections.lp_norm(noise, spec.norm), 1e-12)
  moved = projections.clip_to_box(x + projections.per_row(scale, x) * noise, bounds)
  return jnp.where(restart > 0, moved, x)


def _difference_and_gradient(step_fn, point, y, target, spec: FABSpec):
  """f = logit_target - logit_y at point [N, ...] ([N], float32) and its input gradient."""
  def total(z):
    logits = step_fn(z.astype(spec.dtype)).astype(jnp.float32)
    rows = jnp.arange(z.shape[0])
    f = logits[rows, target] - logits[rows, y]
    return jnp.sum(f), f
  grad, f = jax.grad(total, has_aux=True)(point)
  return f, grad.astype(point.dtype)


def iterate(logits_fn, step_fn, x, y, target, active, point, best, distance, bounds,
          spec: FABSpec):
  """One FAB iteration for the rows `active` [N]: (point, best, distance) after it."""
  lo, hi = _box(x, bounds)
  f, grad = _difference_and_gradient(step_fn, point, y, target, spec)
  w = _rows(grad)
  lo_flat, hi_flat = lo.reshape((1, -1)), hi.reshape((1, -1))
  from_point = boundary_step(_rows(point), w, -f, lo_flat, hi_flat, spec.norm)
  from_x = boundary_step(_rows(x), w, -f - jnp.sum(w * _rows(x - point), axis=1), lo_flat,
                         hi_flat, spec.norm)
  size_point = jnp.maximum(projections.lp_norm(from_point, spec.norm), 1e-8)
  size_x = jnp.maximum(projections.lp_norm(from_x, spec.norm), 1e-8)
  alpha = jnp.clip(size_point / (size_point + size_x), 0.0, spec.alpha_max)
  alpha = projections.per_row(alpha, x)
  moved = ((point + spec.eta * from_point.reshape(x.shape)) * (1 - alpha)
           + (x + spec.eta * from_x.reshape(x.shape)) * alpha)
  moved = jnp.clip(moved, lo, hi)
  fooled = losses.fools(logits_fn, moved.astype(spec.dtype), y) & active
  moved_distance = projections.lp_norm(moved - x, spec.norm).astype(jnp.float32)
  closer = fooled & (moved_distance < distance)
  best = jnp.where(projections.per_row(closer, x), moved, best)
  distance = jnp.where(closer, moved_distance, distance)
  back = x + spec.beta * (moved - x)
  point = jnp.where(projections.per_row(fooled, x), back, moved)
  return point, best, distance


def _active(distance, eps):
  """Rows a run attacks: all of them without eps, else those not broken within eps."""
  return jnp.ones(distance.shape, bool) if eps is None else ~(distance <= eps)


def _result(logits_fn, x, y, s: _State, eps, bounds, spec: FABSpec) -> FABResult:
  """The FABResult of the final state: x_adv exact in the input dtype, judged afresh."""
  if eps is None:
    x_adv = projections.round_toward(projections.clip_to_box(s.best, bounds), x, spec.dtype)
  else:
    delta = projections.project_perturbation(s.best - x, x, eps, spec.norm, bounds)
    x_adv = projections.feasible_point(x, delta, eps, spec.norm, bounds, spec.dtype)
  x_adv = x_adv.astype(spec.dtype)
  success = losses.fools(logits_fn, x_adv, y)
  return FABResult(x_adv, success, success[None], -s.distance, s.distance)


def stepping_fn(logits_fn, spec: FABSpec):
  """The function FAB differentiates: logits_fn, or its convs in dmr's forms (fast_convs)."""
  return conv_rewrite.with_fast_convs(logits_fn) if spec.fast_convs else logits_fn


def attack(logits_fn, x, y, key, eps, bounds, spec: FABSpec) -> FABResult:
  """The traced attack behind `fab` (no validation): run r = target * restarts + restart with
  key fold_in(key, r); with eps, runs stop once every row is broken within eps."""
  x, bounds = widen(x, bounds)
  step_fn = stepping_fn(logits_fn, spec)
  targets = _targets(logits_fn, x, y, spec)

  def one_run(run, s):
    target = targets[run // spec.restarts]
    active = _active(s.distance, eps)
    start = _run_start(x, jax.random.fold_in(key, run), run % spec.restarts, eps, bounds, spec)
    body = lambda _, c: iterate(logits_fn, step_fn, x, y, target, active, *c, bounds, spec)
    point, best, distance = jax.lax.fori_loop(0, spec.steps, body, (start, s.best, s.distance))
    return _State(point, best, distance)

  def running(c):
    return (c[0] < spec.runs) & jnp.any(_active(c[1].distance, eps))

  _, s = jax.lax.while_loop(running, lambda c: (c[0] + 1, one_run(c[0], c[1])),
                            (jnp.zeros((), jnp.int32), _initial(x)))
  return jax.lax.stop_gradient(_result(logits_fn, x, y, s, eps, bounds, spec))


compiled_attack = jax.jit(attack, static_argnames="spec")
_jit_widen = jax.jit(widen)
_jit_targets = jax.jit(_targets, static_argnames="spec")
_jit_run_start = jax.jit(_run_start, static_argnames="spec")
_jit_iterate = jax.jit(iterate, static_argnames="spec")
_jit_active = jax.jit(_active)
_jit_result = jax.jit(_result, static_argnames="spec")


def host_attack(logits_fn, x, y, key, eps, bounds, spec: FABSpec) -> FABResult:
  """`attack` with its loops in Python, one compiled call per step (XLA:CPU runs convolutions
  with its fast kernels outside compiled loops); not traceable."""
  x, bounds = _jit_widen(x, bounds)
  step_fn = stepping_fn(logits_fn, spec)
  targets = _jit_targets(logits_fn, x, y, spec)
  s = _initial(x)
  for run in range(spec.runs):
    active = _jit_active(s.distance, eps)
    if not bool(jnp.any(active)):
      break
    point = _jit_run_start(x, jax.random.fold_in(key, run), run % spec.restarts, eps, bounds,
                           spec)
    best, distance = s.best, s.distance
    for _ in range(spec.steps):
      point, best, distance = _jit_iterate(logits_fn, step_fn, x, y, targets[run // spec.restarts],
                                        active, point, best, distance, bounds, spec)
    s = _State(point, best, distance)
  return _jit_result(logits_fn, x, y, s, eps, bounds, spec)


def _check(spec: FABSpec, host_loop, key, eps, x, y, bounds) -> None:
  """The checks of `fab` that need no model."""
  validation.check_choice("norm", spec.norm, NORMS)
  for name in ("steps", "restarts", "target_classes"):
    validation.check_count(name, getattr(spec, name))
  for name, value, low, high in (("alpha_max", spec.alpha_max, 0.0, 1.0),
                                 ("eta", spec.eta, 1.0, np.inf), ("beta", spec.beta, 0.0, 1.0)):
    if not low <= value <= high:
      raise ValueError(f"{name}={value} must be in [{low}, {high}].")
  if eps is None and spec.restarts > 1:
    raise ValueError("restarts > 1 start at distance eps / 2 and need eps; pass eps or "
                     "restarts=1.")
  validation.check_host_loop(host_loop, "steps", x, y, key, eps, bounds)
  validation.check_problem(key, 1.0 if eps is None else eps, x, y, bounds)


def fab(logits_fn: LogitsFn, x: jax.Array, y: jax.Array, *, key: jax.Array,
        eps: float | None, norm: str = "linf", steps: int = 100, restarts: int = 1,
        target_classes: int = 9, alpha_max: float = 0.1, eta: float = 1.05, beta: float = 0.9,
        bounds: projections.Bounds = (0.0, 1.0), host_loop: bool = False,
        fast_convs: bool | str = "auto") -> FABResult:
  """Targeted FAB (FAB-T of AutoAttack): the closest adversarial example it finds per input.

  Args:
    logits_fn: pure function, inputs [N, ...] -> logits [N, K], rows independent; reuse
      compilations as for `pgd` (a jax.tree_util.Partial or an adapter).
    x: clean inputs [B, ...], floating, finite, inside `bounds`; FAB computes in float32 (or
      wider), the model sees x's dtype.
    y: int true labels [B] in [0, K).
    key: jax.random key; run r (target r // restarts) starts from fold_in(key, r).
    eps: radius of the `norm` ball x_adv must lie in (target runs skip rows already broken
      within it), or None: the minimum-norm attack (x_adv the closest point found anywhere).
    norm: "linf" | "l2".
    steps: iterations per run (AutoAttack: 100).
    restarts: runs per target; restarts after the first start at distance eps / 2 (needs eps).
    target_classes: how many classes ranked 2, 3, ... by the clean logits (<= K - 1;
      AutoAttack: 9).
    alpha_max, eta, beta: the bias towards x, the overshoot and the backward step of Croce and
      Hein (AutoAttack: 0.1, 1.05, 0.9).
    bounds: (lo, hi) box of valid inputs, or None.
    host_loop: one compiled call per step from Python (faster for conv models on XLA:CPU; not
      usable inside jax.jit/vmap) instead of compiled loops.
    fast_convs: as for `pgd`: differentiate logits_fn's lax convs in dmr's forms ("auto": on
      CPU when its input gradient convolves).

  Returns:
    FABResult(x_adv [B, ...] in x's dtype, success [B], success_per_restart [1, B], loss [B],
    distance [B]). Guarantees, as for `pgd`: x_adv is inside `bounds` (and, with eps,
    lp_norm(x_adv - x) <= eps exactly in float32), and success[b] holds only if a fresh forward
    pass on x_adv[b] gives finite, fooled logits.
  """
  spec = FABSpec(norm, steps, restarts, target_classes, float(alpha_max), float(eta),
                 float(beta))
  _check(spec, host_loop, key, eps, x, y, bounds)
  model = inspect_model(logits_fn, x)
  check_model(model, x, y, None, False)
  classes = model.logits.shape[1]
  if target_classes > classes - 1:
    raise ValueError(f"target_classes={target_classes} exceeds the {classes - 1} classes other "
                     "than the label; lower it.")
  fast, _ = resolve_stepping(fast_convs, False, logits_fn, x)
  spec = dataclasses.replace(spec, fast_convs=bool(fast), dtype=str(jnp.result_type(x)))
  run = host_attack if host_loop else compiled_attack
  return run(as_pytree_fn(logits_fn), x, y, key, eps, bounds, spec)
