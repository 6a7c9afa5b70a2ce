"""APGD: Auto-PGD of Croce and Hein (2020), PGD without a step size to tune.

Per input (one row), one run of `steps` iterations:
  - start: a random point on the eps-sphere (linf, l2) or a projected Gaussian (l1), in the box;
  - step (linf, l2): z = P(x_k + eta_k * steepest_ascent(g_k)),
    x_{k+1} = P(x_k + 0.75 (z - x_k) + 0.25 (x_k - x_{k-1})) (no momentum at the first step);
    P is the projection onto the eps-ball and the box; eta_0 = 2 eps;
  - checkpoints after windows of 0.22, 0.19, ..., down to 0.06 of the steps: eta halves, and the
    row restarts from its highest-loss point, when fewer than rho = 75% of the window's steps
    raised the loss, or when the step was not halved at the previous checkpoint and the best loss
    has not improved since;
  - l1 (APGD-L1 of Croce and Hein 2021, "Mind the box"): the step moves the sign of the largest
    |g| coordinates, a share of the coordinates that adapts to the sparsity of the best point so
    far (checkpoints every 4% of the steps), eta_0 = eps, and P is the exact Euclidean projection
    onto the intersection of the L1 ball and the box (projections.project_l1_box); no momentum.
The first iterate that fools the model is returned; otherwise the highest-loss one. Rows run as
one batch; the step loop ends once every row is fooled (not when unrolled).

As `pgd`, APGD computes in float32 (or wider) and every iterate it evaluates is a value of the
input dtype exactly inside the ball and the box (projections.feasible_point); the model sees it
in the input dtype, and the returned x_adv is judged afresh.

Losses: "ce", "dlr" (untargeted), and "ce-targeted", "dlr-targeted" (APGD-T): `target_classes`
runs per restart, each pushing one of the classes ranked 2, 3, ... by the clean logits above the
label. Success is always a prediction different from the label y.
"""
from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dmr.attacks import _execution, losses, optimizers, projections, validation
from dmr.attacks.projected_gradient import AttackResult, LogitsFn, widen

MOMENTUM = 0.75      # weight of the new step; 1 - MOMENTUM on the previous move
RHO = 0.75           # share of loss-raising steps a window needs to keep its step size
L1_START_SHARE = 0.2  # share of coordinates the first L1 steps move
DUST = 1e-6          # l1: coordinates moved by less than DUST * eps count as unmoved

LOSSES = ("ce", "dlr", "ce-targeted", "dlr-targeted")
_MIN_CLASSES = {"ce": 2, "dlr": 3, "ce-targeted": 2, "dlr-targeted": 4}


@dataclasses.dataclass(frozen=True)
class APGDSpec:
  """The static options of `apgd` (see there); dtype: the name of the input dtype, which the
  model sees (the attack computes in projected_gradient.compute_dtype of it)."""
  norm: str = "linf"
  loss: str = "ce"
  steps: int = 100
  restarts: int = 1
  target_classes: int = 9
  dtype: str = "float32"

  @property
  def targeted(self) -> bool:
    return self.loss.endswith("-targeted")

  @property
  def runs(self) -> int:
    return self.restarts * (self.target_classes if self.targeted else 1)


def checkpoint_schedule(steps: int, norm: str) -> tuple[np.ndarray, np.ndarray]:
  """(is_checkpoint [steps] bool, window [steps] int): step i (0-based) closes a window of
  window[i] steps. linf/l2: windows of 22% of the steps, shrinking by 3% down to 6%; l1: 4%."""
  if norm == "l1":
    length = shortest = max(int(0.04 * steps), 1)
    shrink = 0
  else:
    length = max(int(0.22 * steps), 1)
    shrink, shortest = max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
  is_checkpoint, window = np.zeros(steps, bool), np.zeros(steps, np.int32)
  since = 0
  for i in range(steps):
    since += 1
    if since == length:
      is_checkpoint[i], window[i], since = True, length, 0
      length = max(length - shrink, shortest)
  return is_checkpoint, window


def _feasible(point, x, eps, norm: str, bounds, dtype: str):
  """point [N, ...] projected onto the eps-ball around x and the box, rounded to a value of
  `dtype` exactly inside both (projections.feasible_point)."""
  if norm == "l1":
    delta = projections.project_l1_box(point - x, x, eps, bounds)
  else:
    delta = projections.project_perturbation(point - x, x, eps, norm, bounds)
  return projections.feasible_point(x, delta, eps, norm, bounds, dtype)


def _start(key, x, eps, norm: str, bounds, dtype: str):
  """The first iterate [N, ...]: a random point of the eps-sphere (linf, l2) or a Gaussian
  projected onto the L1 ball (l1), made feasible in the box."""
  if norm == "linf":
    noise = jax.random.uniform(key, x.shape, x.dtype, -1.0, 1.0)
  else:
    noise = jax.random.normal(key, x.shape, x.dtype)
  if norm != "l1":
    length = projections.per_row(projections.lp_norm(noise, norm), noise)
    noise = eps * noise / jnp.maximum(length, 1e-12)
  return _feasible(x + noise, x, eps, norm, bounds, dtype)


def _sparse_sign(grad, share):
  """sign(grad) on the floor(share * D) (at least 1) largest-|grad| coordinates of each row
  (ties at the threshold included), scaled to unit L1. share [N]; [N, ...].

  Rounding the count down matters once the best point has 2 or 3 nonzero coordinates: moving
  all of them alike, the L1 projection keeps their ratio, and the attack would stall there.
  """
  flat = grad.reshape((grad.shape[0], -1))
  dim = flat.shape[1]
  magnitude = jnp.abs(flat)
  rank = jnp.clip(jnp.ceil((1.0 - share) * dim).astype(jnp.int32), 0, dim - 1)
  threshold = jnp.take_along_axis(jnp.sort(magnitude, axis=1), rank[:, None], axis=1)
  direction = jnp.sign(flat) * (magnitude >= threshold)
  count = jnp.sum(jnp.abs(direction), axis=1, keepdims=True)
  return (direction / jnp.maximum(count, 1.0)).reshape(grad.shape)


def _evaluator(logits_fn, y, targets, spec: APGDSpec):
  """x_adv [N, ...] -> (loss [N], success [N], grad [N, ...]), all finite-safe: a non-finite
  loss is -inf, a non-finite gradient entry 0, and a row with a non-finite logit never succeeds.
  The model sees x_adv in the input dtype."""
  per_row = {"ce": lambda z: losses.cross_entropy(z, y),
             "dlr": lambda z: losses.dlr(z, y),
             "ce-targeted": lambda z: -losses.cross_entropy(z, targets),
             "dlr-targeted": lambda z: losses.targeted_dlr(z, y, targets)}[spec.loss]

  def total(x_adv):
    logits = logits_fn(x_adv.astype(spec.dtype)).astype(x_adv.dtype)
    validation.check_logits(logits, y)
    value = per_row(logits)
    return jnp.sum(jnp.where(jnp.isfinite(value), value, 0.0)), (value, logits)

  def evaluate(x_adv):
    (_, (value, logits)), grad = jax.value_and_grad(total, has_aux=True)(x_adv)
    return (jnp.where(jnp.isfinite(value), value, -jnp.inf),
            losses.is_success(logits, y, False), optimizers.finite_or_zero(grad))

  return evaluate


class _State(NamedTuple):
  """One APGD run, per row [N] or [N, ...]."""
  x: jax.Array           # current iterate
  x_prev: jax.Array      # the iterate before it (momentum)
  grad: jax.Array        # loss gradient at x
  loss: jax.Array        # loss at x
  step: jax.Array        # step size eta
  best_x: jax.Array      # highest-loss iterate, its loss and gradient
  best_loss: jax.Array
  best_grad: jax.Array
  raises: jax.Array      # steps that raised the loss since the last checkpoint
  loss_at_check: jax.Array     # best_loss at the last checkpoint
  halved_at_check: jax.Array   # whether the last checkpoint halved the step
  share: jax.Array             # l1: share of coordinates a step moves
  sparsity_at_check: jax.Array  # l1: nonzero coordinates of best_x - x at the last checkpoint
  found_x: jax.Array     # first iterate that fooled the model, its loss, whether there is one
  found_loss: jax.Array
  found: jax.Array


def _next_point(s: _State, x, eps, bounds, spec: APGDSpec, weight):
  """The APGD step from s.x; weight: 1 at the first step, else MOMENTUM."""
  feasible = lambda point: _feasible(point, x, eps, spec.norm, bounds, spec.dtype)
  step = projections.per_row(s.step, x)
  if spec.norm == "l1":
    return feasible(s.x + step * _sparse_sign(s.grad, s.share))
  z = feasible(s.x + step * optimizers.steepest_ascent(s.grad, spec.norm))
  return feasible(s.x + weight * (z - s.x) + (1.0 - weight) * (s.x - s.x_prev))


def _record(s: _State, x_new, loss, success, grad) -> _State:
  """s after evaluating the new iterate x_new."""
  rows = lambda keep, a, b: jnp.where(projections.per_row(keep, a), a, b)
  newly = success & ~s.found
  better = loss > s.best_loss
  return s._replace(
      x=x_new, x_prev=s.x, grad=grad, loss=loss,
      best_x=rows(better, x_new, s.best_x), best_loss=jnp.where(better, loss, s.best_loss),
      best_grad=rows(better, grad, s.best_grad), raises=s.raises + (loss > s.loss),
      found_x=rows(newly, x_new, s.found_x), found_loss=jnp.where(newly, loss, s.found_loss),
      found=s.found | success)


def _restart_from_best(s: _State, rows) -> _State:
  keep = lambda a, b: jnp.where(projections.per_row(rows, a), a, b)
  return s._replace(x=keep(s.best_x, s.x), grad=keep(s.best_grad, s.grad))


def _checkpoint(s: _State, window, x, eps, norm: str) -> _State:
  """The step-size decision at the end of a window of `window` steps."""
  if norm == "l1":
    moved = jnp.abs(s.best_x - x) > DUST * eps   # rounding dust of the projection is not moved
    sparsity = jnp.sum(moved.reshape((x.shape[0], -1)), axis=1).astype(s.step.dtype)
    sparser = sparsity < 0.95 * s.sparsity_at_check
    step = jnp.clip(jnp.where(sparser, eps, s.step / 1.5), eps / 10.0, eps)
    s = s._replace(step=step, share=sparsity / math.prod(x.shape[1:]) / 1.5,
                   sparsity_at_check=sparsity)
    return _restart_from_best(s, sparser)
  few_raises = s.raises < RHO * window
  stalled = ~s.halved_at_check & (s.loss_at_check >= s.best_loss)
  halve = few_raises | stalled
  s = s._replace(step=jnp.where(halve, s.step / 2.0, s.step), raises=jnp.zeros_like(s.raises),
                 loss_at_check=s.best_loss, halved_at_check=halve)
  return _restart_from_best(s, halve)


def _initial_state(logits_fn, x, y, targets, key, eps, bounds, spec: APGDSpec) -> _State:
  """The state of a run at its random start."""
  x0 = _start(key, x, eps, spec.norm, bounds, spec.dtype)
  loss, success, grad = _evaluator(logits_fn, y, targets, spec)(x0)
  n = x.shape[0]
  return _State(x=x0, x_prev=x0, grad=grad, loss=loss,
                step=jnp.full((n,), (1.0 if spec.norm == "l1" else 2.0) * eps, jnp.float32),
                best_x=x0, best_loss=loss, best_grad=grad, raises=jnp.zeros((n,), jnp.int32),
                loss_at_check=loss, halved_at_check=jnp.ones((n,), bool),
                share=jnp.full((n,), L1_START_SHARE, jnp.float32),
                sparsity_at_check=jnp.full((n,), math.prod(x.shape[1:]), jnp.float32),
                found_x=x0, found_loss=loss, found=success)


def _iteration(logits_fn, x, y, targets, eps, bounds, s: _State, spec: APGDSpec, first,
               checkpoint, window) -> _State:
  """One step; first/checkpoint/window are Python values when the schedule is static."""
  x_new = _next_point(s, x, eps, bounds, spec, jnp.where(first, 1.0, MOMENTUM))
  s = _record(s, x_new, *_evaluator(logits_fn, y, targets, spec)(x_new))
  close = lambda s: _checkpoint(s, window, x, eps, spec.norm)
  if isinstance(checkpoint, bool):
    return close(s) if checkpoint else s
  return jax.lax.cond(checkpoint, close, lambda s: s, s)


def _outcome(s: _State):
  """(x_adv [N, ...], loss [N], success [N]) of a finished run."""
  pick = lambda a, b: jnp.where(projections.per_row(s.found, a), a, b)
  return pick(s.found_x, s.best_x), jnp.where(s.found, s.found_loss, s.best_loss), s.found


def _run(logits_fn, x, y, targets, key, eps, bounds, spec: APGDSpec, unroll: bool):
  """One APGD run per row of x [N, ...]: (x_adv [N, ...], loss [N], success [N]); unroll: the
  steps as straight-line code with a static schedule, else a lax.while_loop that ends once
  every row is fooled."""
  is_checkpoint, window = checkpoint_schedule(spec.steps, spec.norm)
  s = _initial_state(logits_fn, x, y, targets, key, eps, bounds, spec)
  step = lambda s, *schedule: _iteration(logits_fn, x, y, targets, eps, bounds, s, spec, *schedule)
  if unroll:
    for i in range(spec.steps):
      s = step(s, i == 0, bool(is_checkpoint[i]), int(window[i]))
  else:
    is_checkpoint, window = jnp.asarray(is_checkpoint), jnp.asarray(window)
    _, s = jax.lax.while_loop(
        lambda c: (c[0] < spec.steps) & ~jnp.all(c[1].found),
        lambda c: (c[0] + 1, step(c[1], c[0] == 0, is_checkpoint[c[0]], window[c[0]])),
        (jnp.zeros((), jnp.int32), s))
  return _outcome(s)


def _keep_better(best, run_outcome):
  """Per row, the run's outcome replaces `best` (x_adv, loss, success) unless best already
  succeeded; it does when it succeeds or has a higher loss. Returns (best, run success)."""
  x_run, loss_run, success_run = run_outcome
  better = ~best[2] & (success_run | (loss_run > best[1]))
  take = lambda a, b: jnp.where(projections.per_row(better, a), a, b)
  return (take(x_run, best[0]), take(loss_run, best[1]), best[2] | success_run), success_run


def _run_targets(logits_fn, x, y, spec: APGDSpec):
  """[runs, N] loss targets: per run, the label (untargeted) or the class ranked
  2 + run // restarts by the clean logits."""
  if not spec.targeted:
    return jnp.broadcast_to(y, (spec.runs,) + y.shape)
  ranking = jnp.argsort(-logits_fn(x.astype(spec.dtype)), axis=1)
  return ranking[:, 1 + jnp.arange(spec.runs) // spec.restarts].T


def _nothing_yet(x):
  n = x.shape[0]
  return x, jnp.full((n,), -jnp.inf, jnp.float32), jnp.zeros((n,), bool)


def _result(logits_fn, x_adv, y, per_run, loss, spec: APGDSpec) -> AttackResult:
  """The AttackResult of x_adv [B, ...] (computed in the wide dtype): x_adv in the input dtype,
  its success judged afresh by a new forward pass."""
  x_adv = x_adv.astype(spec.dtype)
  return AttackResult(x_adv, losses.fools(logits_fn, x_adv, y), per_run, loss)


def search(step_fn, x, y, key, eps, bounds, spec: APGDSpec, unroll: bool):
  """All runs of APGD on step_fn from x [B, ...] (compute dtype), traced: runs (restart r,
  target t) one after the other (run t * restarts + r, key fold_in(key, run)); a run is skipped
  once every row is fooled. Per row: the first successful run's iterate, else the highest-loss
  one. Returns (x_adv [B, ...] in the compute dtype, loss [B], success per run [runs, B])."""

  def one_run(best, run_and_targets):
    run, targets = run_and_targets
    attempt = lambda best: _keep_better(best, _run(
        step_fn, x, y, targets, jax.random.fold_in(key, run), eps, bounds, spec, unroll))
    skip = lambda best: (best, jnp.zeros_like(best[2]))
    return jax.lax.cond(jnp.all(best[2]), skip, attempt, best)

  runs = (jnp.arange(spec.runs), _run_targets(step_fn, x, y, spec))
  (x_adv, loss, _), per_run = jax.lax.scan(one_run, _nothing_yet(x), runs)
  return x_adv, loss, per_run


def attack(logits_fn, x, y, key, eps, bounds, spec: APGDSpec,
           execution: _execution.Execution) -> AttackResult:
  """The traced attack behind `apgd` (no validation; execution resolved, not the host loop)."""
  x, bounds = widen(x, bounds)
  x_adv, loss, per_run = search(execution.stepping_fn(logits_fn), x, y, key, eps, bounds, spec,
                                execution.unroll)
  return jax.lax.stop_gradient(_result(logits_fn, x_adv, y, per_run, loss, spec))


compiled_attack = jax.jit(attack, static_argnames=("spec", "execution"))
jit_widen = jax.jit(widen)
_jit_initial_state = jax.jit(_initial_state, static_argnames="spec")
_jit_iteration = jax.jit(_iteration, static_argnames=("spec", "first", "checkpoint", "window"))
_jit_run_targets = jax.jit(_run_targets, static_argnames="spec")
_jit_outcome = jax.jit(_outcome)
_jit_keep_better = jax.jit(_keep_better)
_jit_result = jax.jit(_result, static_argnames="spec")
HOST_CHECK_EVERY = 10   # host loop: steps between checks whether every row is fooled


def host_search(step_fn, x, y, key, eps, bounds, spec: APGDSpec):
  """`search` with the loops in Python: every step is its own compiled call (a few small
  programs, compiled in seconds), so XLA:CPU runs convolutions with its fast kernels, which it
  does not inside a compiled loop; not traceable (no jit/vmap around it)."""
  is_checkpoint, window = checkpoint_schedule(spec.steps, spec.norm)
  targets = _jit_run_targets(step_fn, x, y, spec)
  best, per_run = _nothing_yet(x), []
  for run in range(spec.runs):
    if bool(jnp.all(best[2])):
      per_run.append(jnp.zeros_like(best[2]))
      continue
    s = _jit_initial_state(step_fn, x, y, targets[run], jax.random.fold_in(key, run), eps,
                           bounds, spec)
    for i in range(spec.steps):
      if i % HOST_CHECK_EVERY == 0 and bool(jnp.all(s.found)):
        break
      s = _jit_iteration(step_fn, x, y, targets[run], eps, bounds, s, spec, i == 0,
                         bool(is_checkpoint[i]), int(window[i]))
    best, success_run = _jit_keep_better(best, _jit_outcome(s))
    per_run.append(success_run)
  return best[0], best[1], jnp.stack(per_run)


def host_attack(logits_fn, x, y, key, eps, bounds, spec: APGDSpec,
                execution: _execution.Execution) -> AttackResult:
  """`attack` through host_search."""
  x, bounds = jit_widen(x, bounds)
  x_adv, loss, per_run = host_search(execution.stepping_fn(logits_fn), x, y, key, eps, bounds,
                                     spec)
  return _jit_result(logits_fn, x_adv, y, per_run, loss, spec)


def validate(spec: APGDSpec, execution: _execution.Execution, key, eps, x, y, bounds,
             what: str = "x", box_name: str = "bounds") -> None:
  """The checks of `apgd` and `latent_apgd` that need no model, before tracing."""
  validation.check_choice("norm", spec.norm, projections.NORMS)
  validation.check_choice("loss", spec.loss, LOSSES)
  for name in ("steps", "restarts", "target_classes"):
    validation.check_count(name, getattr(spec, name))
  execution.validate()
  validation.check_host_loop(execution.host_loop, "steps", x, y, key, eps, bounds)
  validation.check_problem(key, eps, x, y, bounds, what, box_name)


def check_classes(spec: APGDSpec, model: _execution.ModelInfo, x, y) -> None:
  """The checks that need the model's output: logits [B, K], labels in [0, K), and enough
  classes for the loss and the targets."""
  validation.check_model(model, x, y, None, False)
  classes = model.logits.shape[1]
  if classes < _MIN_CLASSES[spec.loss]:
    raise ValueError(f"loss={spec.loss!r} needs at least {_MIN_CLASSES[spec.loss]} classes, the "
                     f"model has {classes}; use loss='ce'.")
  if spec.targeted and spec.target_classes > classes - 1:
    raise ValueError(f"target_classes={spec.target_classes} exceeds the {classes - 1} classes "
                     "other than the label; lower it.")


def apgd(logits_fn: LogitsFn, x: jax.Array, y: jax.Array, *, key: jax.Array, eps: float,
         norm: str = "linf", loss: str = "ce", steps: int = 100, restarts: int = 1,
         target_classes: int = 9, bounds: projections.Bounds = (0.0, 1.0),
         unroll: bool | str = "auto", host_loop: bool = False,
         fast_convs: bool | str = "auto") -> AttackResult:
  """APGD (Croce and Hein 2020) within an eps-ball around x, inside the box `bounds`.

  Args:
    logits_fn: pure function, inputs [N, ...] -> logits [N, K], rows independent (eval-mode
      BatchNorm). As for `pgd`, pass jax.tree_util.Partial(apply, params) or an adapter
      (from_linen, from_nnx, from_equinox) to reuse the compiled attack across new params; any
      other callable is compiled anew on every call.
    x: clean inputs [B, ...], floating (float32, bfloat16, float16, float64), finite, inside
      `bounds`. The attack computes in float32 (or x's dtype if wider); the model sees inputs
      in x's dtype.
    y: int true labels [B] in [0, K).
    key: jax.random key; run r starts from fold_in(key, r).
    eps: radius of the `norm` ball (scalar > 0).
    norm: "linf" | "l2" | "l1" (APGD-L1 with adaptive sparsity).
    loss: "ce" | "dlr" (APGD-CE, APGD-DLR) | "dlr-targeted" (APGD-T of AutoAttack) |
      "ce-targeted". The targeted losses push, per run, one of the `target_classes` classes
      ranked 2, 3, ... by the clean logits above the label; success is still any prediction
      other than y. DLR needs K >= 3 classes, targeted DLR K >= 4.
    steps: iterations per run (>= 1; AutoAttack uses 100).
    restarts: runs per loss target, each from a new random start.
    target_classes: targeted losses only: how many target classes (<= K - 1; AutoAttack: 9).
    bounds: (lo, hi) box of valid inputs (scalars or arrays broadcastable to one input), or None.
    unroll: True unrolls the step loop (fast steps on XLA:CPU, but compiling 100 unrolled steps
      of a conv model takes minutes); False keeps a lax.while_loop, which ends once every row
      is fooled; "auto" (default) never unrolls: on CPU, for a model whose input gradient
      convolves, it runs the host loop when called eagerly, else (and for every other model)
      the lax loop (dmr.attacks._execution.choose_loop).
    host_loop: drive the steps from Python, one compiled call each: on XLA:CPU several times
      faster than the rolled loop for conv models and compiled in seconds, but apgd can then
      not be called inside jax.jit/vmap. Ends (checked every 10 steps) once all are fooled.
    fast_convs: as for `pgd`: the steps use logits_fn's lax convs in dmr's forms (on CPU by
      default when its input gradient convolves); unroll="auto" then follows the fast form.

  Returns:
    AttackResult(x_adv [B, ...] in x's dtype, success [B], success_per_restart [runs, B],
    loss [B]): x_adv is a fooling iterate when success (the first found, from the first run
    that found one), else the highest-loss iterate; success_per_restart[r] says whether run r
    fooled the input (runs after every input is fooled are skipped and report False); loss is
    the run's attack loss at x_adv. No gradient flows through the result. Guarantees, as for
    `pgd`: x_adv is inside `bounds` and lp_norm(x_adv - x) <= eps exactly in float32, and
    success[b] holds only if a fresh forward pass on x_adv[b] gives finite, fooled logits.
  """
  spec = APGDSpec(norm, loss, steps, restarts, target_classes, dtype=str(jnp.result_type(x)))
  execution = _execution.Execution(unroll=unroll, fast_convs=fast_convs, host_loop=host_loop)
  validate(spec, execution, key, eps, x, y, bounds)
  check_classes(spec, _execution.inspect_model(logits_fn, x), x, y)
  execution = execution.resolve_long_loop(
      logits_fn, x, validation.is_concrete(x, y, key, eps, bounds))
  run = host_attack if execution.host_loop else compiled_attack
  return run(_execution.as_pytree_fn(logits_fn), x, y, key, eps, bounds, spec, execution)
