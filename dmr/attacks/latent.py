"""On-manifold attacks: `pgd` and `apgd` over a latent code or transformation parameters
z [B, d], inside an eps-ball around z and a per-dimension box.

Both serve VAE latent codes (decode_fn = the class's decoder) and FONTS transformation
parameters (decode_fn renders theta) alike, and both re-judge success on a fresh decode:
success[b] only when z_adv[b] is finite and logits_fn(decode_fn(z_adv))[b] is finite and fooled.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from dmr.attacks import _execution, losses, projected_gradient, validation
from dmr.attacks.apgd import APGDSpec, check_classes, host_search, jit_widen, search
from dmr.attacks.apgd import validate as validate_apgd


class LatentAttackResult(NamedTuple):
  """z_adv [B, d]: per input the strongest code over restarts; x_adv = decode_fn(z_adv);
  success [B], success_per_restart [R, B], loss [B] as in AttackResult."""
  z_adv: jax.Array
  x_adv: jax.Array
  success: jax.Array
  success_per_restart: jax.Array
  loss: jax.Array


def _decode_then_classify(decode_fn, logits_fn, batch: int, z):
  """logits of decode_fn over restart rows z [B * R, d] (row b * R + r: input b, restart r).

  decode_fn is called on [B, d] codes, one call per restart (vmapped), so it may hold per-input
  data, e.g. the prototype of each row's font and class.
  """
  codes = z.reshape((batch, -1) + z.shape[1:])
  images = jax.vmap(decode_fn, in_axes=1, out_axes=1)(codes)
  return logits_fn(images.reshape((-1,) + images.shape[2:]))


def _decode_then_logits(decode_fn, logits_fn, z):
  return logits_fn(decode_fn(z))


def _codes_to_logits(decode_fn, logits_fn) -> Callable[[jax.Array], jax.Array]:
  """z [B, d] -> logits_fn(decode_fn(z)); a reusable Partial when both functions are."""
  if _execution.is_reusable(decode_fn) and _execution.is_reusable(logits_fn):
    return jax.tree_util.Partial(_decode_then_logits, decode_fn, logits_fn)
  return lambda z: logits_fn(decode_fn(z))


def _judged(decode_fn, logits_fn, z_adv, y, success_per_restart, loss,
            targeted: bool) -> LatentAttackResult:
  """The result for codes z_adv [B, d] in the input dtype, success judged on a fresh decode."""
  x_adv = decode_fn(z_adv)
  finite_code = jnp.all(jnp.isfinite(z_adv.reshape((z_adv.shape[0], -1))), axis=1)
  success = finite_code & losses.fools(logits_fn, x_adv, y, targeted)
  return jax.lax.stop_gradient(LatentAttackResult(
      z_adv=z_adv, x_adv=x_adv, success=success, success_per_restart=success_per_restart,
      loss=loss))


def _latent_attack(decode_fn, logits_fn, z, y, key, eps, step_size, box, spec, execution):
  """The traced attack behind `latent_pgd`."""
  classify = jax.tree_util.Partial(_decode_then_classify, decode_fn, logits_fn, z.shape[0])
  result = projected_gradient.attack(classify, z, y, key, eps, step_size, box, spec, execution)
  return _judged(decode_fn, logits_fn, result.x_adv, y, result.success_per_restart,
                 result.loss, spec.targeted)


def latent_pgd(decode_fn: Callable[[jax.Array], jax.Array],
               logits_fn: Callable[[jax.Array], jax.Array], z: jax.Array, y: jax.Array, *,
               key: jax.Array, eps: float, norm: str = "linf",
               box: projected_gradient.Bounds = None, steps: int = 40,
               step_size: float | None = None, optimizer: str = "sign", restarts: int = 1,
               init: str = "uniform", loss: str = "ce", targeted: bool = False,
               early_stop: bool = True, y_true: jax.Array | None = None,
               unroll: bool | str = "auto", max_rows: int | None = None,
               fast_convs: bool | str = "auto") -> LatentAttackResult:
  """Attacks logits_fn(decode_fn(z)) by perturbing z within an eps-ball around z, inside `box`.

  Every option means what it means for `pgd`, with the eps-ball and the box acting on z.

  Args:
    decode_fn: pure function, codes [B, d] -> inputs of logits_fn [B, ...], rows independent;
      it is always called on B rows matching z (restarts are vmapped), so it may close over
      per-row data such as each input's class decoder or font prototype.
    logits_fn: pure function, inputs [N, ...] -> logits [N, K].
    z: starting codes [B, d], finite, inside `box` (clip them into it first if needed).
    y: int labels [B] (targets if targeted).
    box: None, or (lo, hi) per-dimension limits of z, each a scalar or [d] (e.g. the range of the
      training codes).
    Other arguments, also how it runs (unroll, max_rows, fast_convs): see `pgd` (defaults:
    sign -> 2.5 * eps / steps; adam -> 0.005). As there, decode_fn and logits_fn reuse one
    compilation across new params only when both are traced arguments (jax.tree_util.Partial
    or an adapter); otherwise each call compiles anew.

  Returns:
    LatentAttackResult(z_adv [B, d], x_adv [B, ...], success [B], success_per_restart [R, B],
    loss [B]); success[b] holds only if z_adv[b] is finite and a fresh forward pass of
    logits_fn on x_adv[b] = decode_fn(z_adv)[b] gives finite, fooled logits.
  """
  spec = projected_gradient.StaticOptions(norm, steps, optimizer, restarts, init, loss,
                                          targeted, early_stop)
  execution = _execution.Execution(unroll=unroll, fast_convs=fast_convs, max_rows=max_rows)
  projected_gradient.validate_attack(spec, execution, key, eps, step_size, z, y, box, "z",
                                     "box")
  validation.check_y_true(y_true, y, targeted)
  codes_to_logits = _codes_to_logits(decode_fn, logits_fn)
  validation.check_model(_execution.inspect_model(codes_to_logits, z), z, y, y_true, targeted)
  execution = execution.resolve(codes_to_logits, z)
  step_size = projected_gradient.resolve_step_size(step_size, eps, spec)
  return _execution.run_compiled(_latent_attack, (decode_fn, logits_fn), z, y, key, eps,
                                 step_size, box, spec=spec, execution=execution)


def _latent_apgd_attack(decode_fn, logits_fn, z, y, key, eps, box, spec: APGDSpec,
                        execution: _execution.Execution) -> LatentAttackResult:
  """The traced attack behind `latent_apgd` (execution resolved, not the host loop)."""
  wide, box = projected_gradient.widen(z, box)
  classify = execution.stepping_fn(jax.tree_util.Partial(_decode_then_logits, decode_fn,
                                                         logits_fn))
  z_adv, loss, per_run = search(classify, wide, y, key, eps, box, spec, execution.unroll)
  return _judged(decode_fn, logits_fn, z_adv.astype(z.dtype), y, per_run, loss, False)


def _host_latent_apgd(decode_fn, logits_fn, z, y, key, eps, box, spec: APGDSpec,
                      execution: _execution.Execution) -> LatentAttackResult:
  """`_latent_apgd_attack` through apgd.host_search: one compiled call per step."""
  wide, box = jit_widen(z, box)
  classify = execution.stepping_fn(jax.tree_util.Partial(_decode_then_logits, decode_fn,
                                                         logits_fn))
  z_adv, loss, per_run = host_search(classify, wide, y, key, eps, box, spec)
  return _jit_judged(decode_fn, logits_fn, z_adv.astype(z.dtype), y, per_run, loss, False)


LATENT_APGD_NORMS = ("linf", "l2")
_compiled_latent_apgd = jax.jit(_latent_apgd_attack, static_argnames=("spec", "execution"))
_jit_judged = jax.jit(_judged, static_argnames="targeted")


def latent_apgd(decode_fn: Callable[[jax.Array], jax.Array],
                logits_fn: Callable[[jax.Array], jax.Array], z: jax.Array, y: jax.Array, *,
                key: jax.Array, eps: float, norm: str = "linf",
                box: projected_gradient.Bounds = None, loss: str = "ce", steps: int = 100,
                restarts: int = 1, target_classes: int = 9, unroll: bool | str = "auto",
                host_loop: bool = False, fast_convs: bool | str = "auto"
                ) -> LatentAttackResult:
  """APGD (Croce and Hein 2020) on logits_fn(decode_fn(z)), perturbing z within an eps-ball
  around z, inside `box`: the steps of `apgd` (step size halved at checkpoints, momentum 0.75,
  restarts from the best point, per-row first success else highest loss) acting on z.

  Args:
    decode_fn: pure function, codes [B, d] -> inputs of logits_fn [B, ...], rows independent;
      always called on the B rows of z (APGD's runs are sequential), so it may close over
      per-row data such as each input's class decoder or font prototype.
    logits_fn: pure function, inputs [N, ...] -> logits [N, K].
    z: starting codes [B, d], floating, finite, inside `box`.
    y: int true labels [B] in [0, K).
    box: None, or (lo, hi) per-dimension limits of z, each a scalar or [d].
    norm: "linf" | "l2" (APGD-L1's sparse steps fall short of the optimum of a linear model
      in a small box-bound latent space, so it is not offered here); loss: "ce" | "dlr" | "ce-targeted" | "dlr-targeted" (the
      targets: the classes ranked 2, 3, ... by the logits at z; success is any prediction
      other than y). Other arguments, also how it runs (unroll, host_loop, fast_convs): see
      `apgd`. decode_fn and logits_fn reuse one compilation across new params only when both
      are traced arguments (jax.tree_util.Partial or an adapter).

  Returns:
    LatentAttackResult(z_adv [B, d] in z's dtype, x_adv [B, ...] = decode_fn(z_adv),
    success [B], success_per_restart [runs, B], loss [B]), without gradient. z_adv is inside
    `box` and lp_norm(z_adv - z) <= eps exactly in float32; success[b] holds only if z_adv[b]
    is finite and a fresh forward pass of logits_fn on x_adv[b] gives finite, fooled logits.
  """
  spec = APGDSpec(norm, loss, steps, restarts, target_classes, dtype=str(jnp.result_type(z)))
  execution = _execution.Execution(unroll=unroll, fast_convs=fast_convs, host_loop=host_loop)
  validation.check_choice("norm", norm, LATENT_APGD_NORMS)
  validate_apgd(spec, execution, key, eps, z, y, box, "z", "box")
  codes_to_logits = _codes_to_logits(decode_fn, logits_fn)
  check_classes(spec, _execution.inspect_model(codes_to_logits, z), z, y)
  execution = execution.resolve_long_loop(
      codes_to_logits, z, validation.is_concrete(z, y, key, eps, box))
  run = _host_latent_apgd if execution.host_loop else _compiled_latent_apgd
  return run(_execution.as_pytree_fn(decode_fn), _execution.as_pytree_fn(logits_fn), z, y, key,
             eps, box, spec, execution)
