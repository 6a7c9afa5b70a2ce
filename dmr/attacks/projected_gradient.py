"""Projected gradient attacks on a classifier: Madry et al.'s PGD and the paper's Adam attack.

One compiled call runs all restarts as one batch [B * R] (row b * R + r is input b, restart r,
so a batch sharded over devices stays sharded) through a lax.while_loop over the steps, tracking
per row the iterate to return:
  early_stop=True:  the FIRST successful iterate (frozen from then on), else the highest loss;
  early_stop=False: the highest-loss iterate over all steps (what adversarial training uses).
The loop ends early once every row has succeeded (early_stop=True only). How the loop runs
(rolled or unrolled, the model's convs in dmr's fast forms, restarts in chunks of max_rows
rows) is the execution's choice (dmr.attacks._execution), never the result's.

The attack computes in float32 (or wider) whatever the input dtype; every iterate it evaluates
is a value of the input dtype inside the box and the ball (projections.feasible_point), so the
returned x_adv is exact in that dtype. `success` is judged afresh on the returned x_adv.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from dmr.attacks import _execution, losses, optimizers, projections, starts, validation
# Re-exported for the attacks that import them from here (square, evaluate).
from dmr.attacks._execution import as_pytree_fn, inspect_model  # noqa: F401
from dmr.attacks.validation import check_model  # noqa: F401

LogitsFn = Callable[[jax.Array], jax.Array]
Bounds = projections.Bounds


class AttackResult(NamedTuple):
  """x_adv [B, ...] in the input dtype: per input the restart to return (a successful one when
  any restart succeeded, ties broken by the highest loss; else the highest loss); success [B]
  bool: a fresh forward pass of logits_fn on this x_adv is finite and fooled; success_per_restart
  [R, B] bool, judged on each restart's returned iterate; loss [B]: the attack loss at x_adv."""
  x_adv: jax.Array
  success: jax.Array
  success_per_restart: jax.Array
  loss: jax.Array


@dataclasses.dataclass(frozen=True)
class StaticOptions:
  """The compile-time options of the algorithm (a jit static argument); see `pgd`."""
  norm: str = "linf"
  steps: int = 40
  optimizer: str = "sign"
  restarts: int = 1
  init: str = "uniform"
  loss: str = "ce"
  targeted: bool = False
  early_stop: bool = True


class _Best(NamedTuple):
  """Per row [N]: the iterate kept so far, its attack loss and whether it fools the model."""
  x_adv: jax.Array
  loss: jax.Array
  success: jax.Array


def compute_dtype(dtype) -> jnp.dtype:
  """The dtype an attack on inputs of `dtype` computes in: float32, or the input's if wider."""
  return jnp.promote_types(dtype, jnp.float32)


def widen(x: jax.Array, bounds: Bounds) -> tuple[jax.Array, Bounds]:
  """x [B, ...] and the box in compute_dtype(x.dtype), the dtype an attack computes in."""
  wide = x.astype(compute_dtype(x.dtype))
  if bounds is None:
    return wide, None
  return wide, tuple(jnp.asarray(b, wide.dtype) for b in bounds)


def _keep_better(best: _Best, x_adv, loss, success, early_stop: bool) -> _Best:
  """Replaces rows of `best` by the current iterate where it is the one to return."""
  better = loss > best.loss
  if early_stop:
    better = ~best.success & (success | better)
  return _Best(jnp.where(projections.per_row(better, x_adv), x_adv, best.x_adv),
               jnp.where(better, loss, best.loss), jnp.where(better, success, best.success))


def _objective(logits_fn, y, dtype, spec: StaticOptions):
  """x_adv [N, ...] -> (summed attack loss, (loss [N], success [N])), for value_and_grad.
  The model sees x_adv in the input dtype; a non-finite loss counts as -inf."""

  def objective(x_adv):
    logits = logits_fn(x_adv.astype(dtype))
    validation.check_logits(logits, y)
    loss = losses.attack_loss(logits, y, spec.loss, spec.targeted).astype(x_adv.dtype)
    loss = jnp.where(jnp.isfinite(loss), loss, -jnp.inf)
    return jnp.sum(jnp.where(jnp.isfinite(loss), loss, 0.0)), (
        loss, losses.is_success(logits, y, spec.targeted))

  return objective


def _optimize(logits_fn, x, y, delta, eps, step_size, bounds, dtype, spec: StaticOptions,
              unroll: bool) -> _Best:
  """Runs one attack per row of x [N, ...] (float32, values of `dtype`) from delta [N, ...];
  unroll: a fully unrolled loop over the steps (no early exit) instead of a lax.while_loop."""
  optimizer = optimizers.make_optimizer(spec.optimizer, spec.norm, step_size)
  rounds = optimizers.projection_rounds(spec.optimizer)
  objective = _objective(logits_fn, y, dtype, spec)

  def feasible(delta):
    delta = projections.project_perturbation(delta, x, eps, spec.norm, bounds, rounds)
    return delta, projections.feasible_point(x, delta, eps, spec.norm, bounds, dtype)

  def running(carry):
    t, _, _, best = carry
    if spec.early_stop:
      return (t < spec.steps) & ~jnp.all(best.success)
    return t < spec.steps

  def step(carry):
    t, delta, opt_state, best = carry
    delta, x_adv = feasible(delta)
    (_, (loss, success)), grad = jax.value_and_grad(objective, has_aux=True)(x_adv)
    best = _keep_better(best, x_adv, loss, success, spec.early_stop)
    updates, opt_state = optimizer.update(grad, opt_state, delta, x_adv=x_adv, bounds=bounds)
    return t + 1, optax.apply_updates(delta, updates), opt_state, best

  n = x.shape[0]
  best = _Best(x, jnp.full((n,), -jnp.inf, x.dtype), jnp.zeros((n,), bool))
  carry = (jnp.zeros((), jnp.int32), delta, optimizer.init(delta), best)
  if unroll:
    carry = jax.lax.fori_loop(0, spec.steps, lambda _, carry: step(carry), carry, unroll=True)
  else:
    carry = jax.lax.while_loop(running, step, carry)
  _, delta, _, best = carry
  _, x_adv = feasible(delta)
  _, (loss, success) = objective(x_adv)
  return _keep_better(best, x_adv, loss, success, spec.early_stop)


def _strongest_restart(best: _Best, batch: int, restarts: int):
  """Per input, the restart to return: [B * R] rows -> (x_adv [B, ...], loss [B],
  success_per_restart [R, B]). A successful restart when there is one (ties: the highest loss),
  else the highest loss."""
  loss = best.loss.reshape(batch, restarts)
  success = best.success.reshape(batch, restarts)
  score = jnp.where(jnp.any(success, axis=1, keepdims=True),
                    jnp.where(success, loss, -jnp.inf), loss)
  pick = jnp.argmax(score, axis=1)
  x_adv = best.x_adv.reshape((batch, restarts) + best.x_adv.shape[1:])
  x_adv = jnp.take_along_axis(x_adv, projections.per_row(pick, x_adv), axis=1)
  return x_adv[:, 0], jnp.take_along_axis(loss, pick[:, None], axis=1)[:, 0], success.T


def _attack_restarts(logits_fn, x, y, key, eps, step_size, bounds, dtype, first: int,
                     count: int, spec: StaticOptions, unroll: bool) -> _Best:
  """Restarts first, ..., first + count - 1 of every input as rows [B * count] (b * count + r)."""
  batch = x.shape[0]
  start = starts.restart_perturbations(key, x.shape, eps, spec.norm, spec.init, count, x.dtype,
                                       first)
  start = jnp.swapaxes(start, 0, 1).reshape((batch * count,) + x.shape[1:])
  rows_x = jnp.repeat(x, count, axis=0)
  rows_y = jnp.repeat(y, count, axis=0)
  return _optimize(logits_fn, rows_x, rows_y, start, eps, step_size, bounds, dtype, spec,
                   unroll)


def attack(logits_fn, x, y, key, eps, step_size, bounds, spec: StaticOptions,
           execution: _execution.Execution) -> AttackResult:
  """The traced attack behind `pgd` (no validation; step_size and execution already resolved).

  x may be of any floating dtype; the attack computes in compute_dtype(x.dtype) and returns
  x_adv in x.dtype. The steps use execution.stepping_fn(logits_fn); the returned success is
  judged by logits_fn itself. The result carries no gradient: a loss on x_adv can be
  differentiated w.r.t. the model's params (adversarial training) without differentiating
  through the attack's loop.
  """
  dtype, batch = x.dtype, x.shape[0]
  wide, bounds = widen(x, bounds)
  step_fn = execution.stepping_fn(logits_fn)
  run = lambda first, count: _attack_restarts(step_fn, wide, y, key, eps, step_size, bounds,
                                              dtype, first, count, spec, execution.unroll)
  best = _execution.in_restart_chunks(run, batch, spec.restarts, execution.max_rows)
  x_adv, loss, success_per_restart = _strongest_restart(best, batch, spec.restarts)
  x_adv = x_adv.astype(dtype)
  success = losses.fools(logits_fn, x_adv, y, spec.targeted)
  return jax.lax.stop_gradient(AttackResult(x_adv=x_adv, success=success,
                                            success_per_restart=success_per_restart, loss=loss))


def resolve_step_size(step_size, eps, spec: StaticOptions):
  """step_size, or the default of optimizers.default_step_size when None."""
  if step_size is None:
    return optimizers.default_step_size(eps, spec.optimizer, spec.steps)
  return step_size


def validate_attack(spec: StaticOptions, execution: _execution.Execution, key, eps, step_size,
                    x, y, bounds, what: str, box_name: str) -> None:
  """All checks shared by `pgd` and `latent_pgd` that need no model, before tracing."""
  validation.check_options(spec)
  execution.validate()
  validation.check_positive("step_size", step_size)
  validation.check_problem(key, eps, x, y, bounds, what, box_name)


def pgd(logits_fn: LogitsFn, x: jax.Array, y: jax.Array, *, key: jax.Array, eps: float,
        norm: str = "linf", steps: int = 40, step_size: float | None = None,
        optimizer: str = "sign", restarts: int = 1, init: str = "uniform",
        bounds: Bounds = (0.0, 1.0), loss: str = "ce", targeted: bool = False,
        early_stop: bool = True, y_true: jax.Array | None = None,
        unroll: bool | str = "auto", max_rows: int | None = None,
        fast_convs: bool | str = "auto") -> AttackResult:
  """Projected gradient attack within an eps-ball around x, inside the box `bounds`.

  Args:
    logits_fn: pure function, inputs [N, ...] -> logits [N, K], with no interaction between rows
      (e.g. BatchNorm in eval mode). Called on batches of B * restarts rows (or max_rows).
      The model must be a traced argument to reuse the compiled attack across new params: pass
      jax.tree_util.Partial(apply, params), or attacks.from_linen / from_nnx / from_equinox.
      Any other callable (a lambda, a closure, an object holding params) is compiled anew on
      every call, so it always runs with its current params.
    x: clean inputs [B, ...], floating (float32, bfloat16, float16, ...), finite, inside
      `bounds`. The attack computes in float32 (or x's dtype if wider) and the model sees
      inputs in x's dtype.
    y: int labels [B] in [0, K); with targeted=True the target labels.
    key: jax.random key; restart r uses fold_in(key, r).
    eps: radius of the `norm` ball (scalar > 0).
    norm: "linf" | "l2" | "l1".
    steps: gradient steps (>= 1); the start and every iterate after a step are evaluated.
    step_size: None for the default: sign -> 2.5 * eps / steps (any norm); adam -> 0.005 (the
      paper's learning rate).
    optimizer: "sign": Madry et al.'s PGD, step along the steepest-ascent direction of the norm
      (sign(g) for linf, g / ||g||_2 for l2, sign(g) on the top 5% |g| coordinates normalized in
      L1 for l1, skipping coordinates pushed against the box), then project onto ball and box.
      "adam": the paper's attack, Adam (optax) on the perturbation with learning rate step_size;
      before each forward pass the perturbation is projected 5 times alternating ball and box.
      Adam rescales every coordinate alike, so with an l2/l1 ball it follows sign(g) rather than
      the steepest ascent of that norm. Non-finite gradient coordinates make a zero step.
    restarts: independent starts, run as one batch; per input the one returned is a successful
      restart when any succeeded (ties broken by the highest loss), else the highest-loss one.
    init: "uniform" (uniform in the ball), "paper" (Gaussian direction normalized in the norm,
      times eps * U(0, 1)), or "zero". Starts are projected into the box.
    bounds: (lo, hi) box of valid inputs (scalars or arrays broadcastable to one input), or None.
    loss: "ce" (cross-entropy) or "margin" (best other logit minus the label's logit).
    targeted: maximize the negated loss of the target labels y; success = prediction == y.
    early_stop: True: each restart keeps its first successful iterate (evaluation), and the
      loop stops once all have one; False: its highest-loss iterate over all steps (adversarial
      training).
    y_true: targeted attacks only: the true labels [B]; a target equal to its true label is
      rejected (when concrete).

    unroll, max_rows, fast_convs: how the attack runs, never what it returns (beyond float
      rounding for fast_convs); the defaults suit CPU, GPU and TPU:
      unroll: True unrolls the step loop (no early exit; compile time grows with steps),
        several times faster on XLA:CPU for models whose input gradient convolves
        (lax.conv_general_dilated autodiffed); False keeps a lax.while_loop (best on GPU/TPU);
        "auto" (default): True on CPU when the gradient the steps take (after fast_convs)
        computes convolutions that the forward pass does not, else False.
      max_rows: None runs all B * restarts rows at once; an int runs the restarts in sequential
        chunks of at most max_rows rows (at least one restart per chunk) to bound memory.
      fast_convs: True computes logits_fn's lax.conv_general_dilated convs (2D, undilated,
        ungrouped; any stride, padding and dimension order) in dmr's forms for the attack's
        steps (dmr.models.conv_rewrite): values equal up to float rounding, input gradients
        that are matrix products, several times faster on XLA:CPU and fast inside the
        lax.while_loop; success is still judged by logits_fn itself. False: never. "auto"
        (default): on CPU when the input gradient of logits_fn computes convolutions that its
        forward pass does not.

  Returns:
    AttackResult(x_adv [B, ...] in x's dtype, success [B], success_per_restart [R, B],
    loss [B]), without gradient: differentiating a training loss on x_adv treats x_adv as a
    constant. Guarantees: x_adv is inside `bounds` and lp_norm(x_adv - x) <= eps, both exact
    in float32 (computing x_adv - x in float32, any summation order); success[b] holds only if
    a fresh forward pass on x_adv[b] gives finite logits that are fooled.
  """
  spec = StaticOptions(norm, steps, optimizer, restarts, init, loss, targeted, early_stop)
  execution = _execution.Execution(unroll=unroll, fast_convs=fast_convs, max_rows=max_rows)
  validate_attack(spec, execution, key, eps, step_size, x, y, bounds, "x", "bounds")
  validation.check_y_true(y_true, y, targeted)
  validation.check_model(_execution.inspect_model(logits_fn, x), x, y, y_true, targeted)
  execution = execution.resolve(logits_fn, x)
  step_size = resolve_step_size(step_size, eps, spec)
  return _execution.run_compiled(attack, (logits_fn,), x, y, key, eps, step_size, bounds,
                                 spec=spec, execution=execution)
