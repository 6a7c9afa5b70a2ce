"""Projected gradient attacks on a classifier: Madry et al.'s PGD and the paper's Adam attack.

One compiled call runs all restarts as one batch [B * R] (row b * R + r is input b, restart r,
so a batch sharded over devices stays sharded) through a lax.while_loop over the steps, tracking
per row the iterate to return:
  early_stop=True:  the FIRST successful iterate (frozen from then on), else the highest loss;
  early_stop=False: the highest-loss iterate over all steps (what adversarial training uses).
The loop ends early once every row has succeeded (early_stop=True only). unroll=True replaces it
by a fully unrolled loop: XLA:CPU compiles convolutions inside loop bodies to a slow generic
kernel (jax-ml/jax#12868), so on CPU unrolling makes conv models several times faster, at a
compile time that grows with the steps.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from dmr.attacks import losses, optimizers, projections, starts, validation


class AttackResult(NamedTuple):
  """x_adv [B, ...]: per input the strongest example over restarts; success [B] bool: some
  restart fooled the model; success_per_restart [R, B] bool, judged on each restart's returned
  iterate; loss [B]: the attack loss at x_adv."""
  x_adv: jax.Array
  success: jax.Array
  success_per_restart: jax.Array
  loss: jax.Array


@dataclasses.dataclass(frozen=True)
class AttackSpec:
  """The static (compile-time) options of an attack; see `pgd`."""
  norm: str = "linf"
  steps: int = 40
  optimizer: str = "sign"
  restarts: int = 1
  init: str = "uniform"
  loss: str = "ce"
  targeted: bool = False
  early_stop: bool = True
  unroll: bool = False


class _Best(NamedTuple):
  """Per row [N]: the iterate kept so far, its attack loss and whether it fools the model."""
  x_adv: jax.Array
  loss: jax.Array
  success: jax.Array


def _keep_better(best: _Best, x_adv, loss, success, early_stop: bool) -> _Best:
  """Replaces rows of `best` by the current iterate where it is the one to return."""
  better = loss > best.loss
  if early_stop:
    better = ~best.success & (success | better)
  return _Best(jnp.where(projections.per_row(better, x_adv), x_adv, best.x_adv),
               jnp.where(better, loss, best.loss), jnp.where(better, success, best.success))


def _objective(logits_fn, y, spec: AttackSpec):
  """x_adv [N, ...] -> (summed attack loss, (loss [N], success [N])), for value_and_grad."""

  def objective(x_adv):
    logits = logits_fn(x_adv)
    validation.check_logits(logits, y)
    loss = losses.attack_loss(logits, y, spec.loss, spec.targeted).astype(jnp.float32)
    return jnp.sum(loss), (loss, losses.is_success(logits, y, spec.targeted))

  return objective


def _optimize(logits_fn, x, y, delta, eps, step_size, bounds, spec: AttackSpec) -> _Best:
  """Runs one attack per row of x [N, ...] from the perturbation delta [N, ...]."""
  optimizer = optimizers.make_optimizer(spec.optimizer, spec.norm, step_size)
  rounds = optimizers.projection_rounds(spec.optimizer)
  objective = _objective(logits_fn, y, spec)

  def feasible(delta):
    delta = projections.project_perturbation(delta, x, eps, spec.norm, bounds, rounds)
    return delta, projections.clip_to_box(x + delta, bounds)

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
  best = _Best(x, jnp.full((n,), -jnp.inf), jnp.zeros((n,), bool))
  carry = (jnp.zeros((), jnp.int32), delta, optimizer.init(delta), best)
  if spec.unroll:
    carry = jax.lax.fori_loop(0, spec.steps, lambda _, carry: step(carry), carry, unroll=True)
  else:
    carry = jax.lax.while_loop(running, step, carry)
  _, delta, _, best = carry
  _, x_adv = feasible(delta)
  _, (loss, success) = objective(x_adv)
  return _keep_better(best, x_adv, loss, success, spec.early_stop)


def _strongest_restart(best: _Best, batch: int, restarts: int, early_stop: bool) -> AttackResult:
  """Per input, the restart to return: [B * R] rows -> AttackResult with B inputs.

  early_stop=True prefers successful restarts (ties: highest loss); early_stop=False takes the
  highest loss.
  """
  loss = best.loss.reshape(batch, restarts)
  success = best.success.reshape(batch, restarts)
  score = loss
  if early_stop:
    score = jnp.where(jnp.any(success, axis=1, keepdims=True),
                      jnp.where(success, loss, -jnp.inf), loss)
  pick = jnp.argmax(score, axis=1)
  x_adv = best.x_adv.reshape((batch, restarts) + best.x_adv.shape[1:])
  x_adv = jnp.take_along_axis(x_adv, projections.per_row(pick, x_adv), axis=1)
  return AttackResult(x_adv=x_adv[:, 0], success=jnp.any(success, axis=1),
                      success_per_restart=success.T,
                      loss=jnp.take_along_axis(loss, pick[:, None], axis=1)[:, 0])


def attack(logits_fn, x, y, key, eps, step_size, bounds, spec: AttackSpec) -> AttackResult:
  """The traced attack behind `pgd` (no validation; step_size already resolved).

  The result carries no gradient: a loss on x_adv can be differentiated w.r.t. the model's
  params (adversarial training) without differentiating through the attack's loop.
  """
  batch, restarts = x.shape[0], spec.restarts
  start = starts.restart_perturbations(key, x.shape, eps, spec.norm, spec.init, restarts, x.dtype)
  start = jnp.swapaxes(start, 0, 1).reshape((batch * restarts,) + x.shape[1:])
  rows_x = jnp.repeat(x, restarts, axis=0)
  rows_y = jnp.repeat(y, restarts, axis=0)
  best = _optimize(logits_fn, rows_x, rows_y, start, eps, step_size, bounds, spec)
  return jax.lax.stop_gradient(_strongest_restart(best, batch, restarts, spec.early_stop))


compiled_attack = jax.jit(attack, static_argnames="spec")


def as_pytree_fn(fn) -> jax.tree_util.Partial:
  """fn as a jax.tree_util.Partial, so it can be a jit argument.

  A Partial's arrays (e.g. Partial(apply, params)) are traced arguments, so new params reuse the
  compiled attack; any other callable is keyed by identity, so reuse the same function object.
  """
  return fn if isinstance(fn, jax.tree_util.Partial) else jax.tree_util.Partial(fn)


def resolve_step_size(step_size, eps, spec: AttackSpec):
  """step_size, or the default of optimizers.default_step_size when None."""
  if step_size is None:
    return optimizers.default_step_size(eps, spec.optimizer, spec.steps)
  return step_size


def validate_attack(spec: AttackSpec, key, eps, step_size, x, y, bounds, what: str,
                    box_name: str) -> None:
  """All checks shared by `pgd` and `latent_pgd`, before tracing."""
  validation.check_options(spec)
  validation.check_key(key)
  validation.check_positive("eps", eps)
  validation.check_positive("step_size", step_size)
  validation.check_labels(x, y, what)
  validation.check_bounds(bounds, box_name)
  validation.check_inputs(x, bounds, what, box_name)


def pgd(logits_fn, x, y, *, key, eps, norm: str = "linf", steps: int = 40, step_size=None,
        optimizer: str = "sign", restarts: int = 1, init: str = "uniform",
        bounds=(0.0, 1.0), loss: str = "ce", targeted: bool = False,
        early_stop: bool = True, unroll: bool = False) -> AttackResult:
  """Projected gradient attack within an eps-ball around x, inside the box `bounds`.

  Args:
    logits_fn: pure function, inputs [N, ...] -> logits [N, K], with no interaction between rows
      (e.g. BatchNorm in eval mode). Called on batches of B * restarts rows. Pass
      jax.tree_util.Partial(apply, params) to reuse the compiled attack across new params;
      otherwise the same function object reuses it.
    x: clean inputs [B, ...], floating, finite, inside `bounds`.
    y: int labels [B]; with targeted=True the target labels.
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
      the steepest ascent of that norm.
    restarts: independent starts, run as one batch; per input the strongest is returned
      (early_stop=True: a successful restart, ties broken by the highest loss; else the
      highest loss).
    init: "uniform" (uniform in the ball), "paper" (Gaussian direction normalized in the norm,
      times eps * U(0, 1)), or "zero". Starts are projected into the box.
    bounds: (lo, hi) box of valid inputs (scalars or arrays broadcastable to one input), or None.
    loss: "ce" (cross-entropy) or "margin" (best other logit minus the label's logit).
    targeted: maximize the negated loss of the target labels y; success = prediction == y.
    early_stop: True: each restart keeps its first successful iterate (evaluation), and the
      loop stops once all have one; False: its highest-loss iterate over all steps (adversarial
      training).
    unroll: unroll the step loop (no early exit; compile time grows with steps). Several times
      faster for conv models on XLA:CPU; leave False on GPU/TPU.

  Returns:
    AttackResult(x_adv [B, ...], success [B], success_per_restart [R, B], loss [B]), without
    gradient: differentiating a training loss on x_adv treats x_adv as a constant.
  """
  spec = AttackSpec(norm, steps, optimizer, restarts, init, loss, targeted, early_stop, unroll)
  validate_attack(spec, key, eps, step_size, x, y, bounds, "x", "bounds")
  step_size = resolve_step_size(step_size, eps, spec)
  return compiled_attack(as_pytree_fn(logits_fn), x, y, key, eps, step_size, bounds, spec)
