"""On-manifold attacks: `pgd` over a latent code or transformation parameters z [B, d]."""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from dmr.attacks import losses, projected_gradient, validation


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
  if projected_gradient.is_reusable(decode_fn) and projected_gradient.is_reusable(logits_fn):
    return jax.tree_util.Partial(_decode_then_logits, decode_fn, logits_fn)
  return lambda z: logits_fn(decode_fn(z))


def _latent_attack(decode_fn, logits_fn, z, y, key, eps, step_size, box, spec):
  """The traced attack behind `latent_pgd`; success is re-judged on decode_fn(z_adv) afresh."""
  classify = jax.tree_util.Partial(_decode_then_classify, decode_fn, logits_fn, z.shape[0])
  result = projected_gradient.attack(classify, z, y, key, eps, step_size, box, spec)
  x_adv = decode_fn(result.x_adv)
  finite_code = jnp.all(jnp.isfinite(result.x_adv.reshape((z.shape[0], -1))), axis=1)
  success = finite_code & losses.fools(logits_fn, x_adv, y, spec.targeted)
  return jax.lax.stop_gradient(LatentAttackResult(
      z_adv=result.x_adv, x_adv=x_adv, success=success,
      success_per_restart=result.success_per_restart, loss=result.loss))


def latent_pgd(decode_fn: Callable[[jax.Array], jax.Array],
               logits_fn: Callable[[jax.Array], jax.Array], z: jax.Array, y: jax.Array, *,
               key: jax.Array, eps: float, norm: str = "linf",
               box: projected_gradient.Bounds = None, steps: int = 40,
               step_size: float | None = None, optimizer: str = "sign", restarts: int = 1,
               init: str = "uniform", loss: str = "ce", targeted: bool = False,
               early_stop: bool = True, unroll: bool | str = "auto",
               max_rows: int | None = None, y_true: jax.Array | None = None,
               fast_convs: bool | str = "auto"
               ) -> LatentAttackResult:
  """Attacks logits_fn(decode_fn(z)) by perturbing z within an eps-ball around z, inside `box`.

  Serves VAE latent codes (decode_fn = the class's decoder) and FONTS transformation parameters
  (decode_fn renders theta) alike. Every option means what it means for `pgd`, with the eps-ball
  and the box acting on z.

  Args:
    decode_fn: pure function, codes [B, d] -> inputs of logits_fn [B, ...], rows independent;
      it is always called on B rows matching z (restarts are vmapped), so it may close over
      per-row data such as each input's class decoder or font prototype.
    logits_fn: pure function, inputs [N, ...] -> logits [N, K].
    z: starting codes [B, d], finite, inside `box` (clip them into it first if needed).
    y: int labels [B] (targets if targeted).
    box: None, or (lo, hi) per-dimension limits of z, each a scalar or [d] (e.g. the range of the
      training codes).
    Other arguments: see `pgd` (defaults: sign -> 2.5 * eps / steps; adam -> 0.005). As
    there, decode_fn and logits_fn reuse one compilation across new params only when both are
    traced arguments (jax.tree_util.Partial or an adapter); otherwise each call compiles anew.

  Returns:
    LatentAttackResult(z_adv [B, d], x_adv [B, ...], success [B], success_per_restart [R, B],
    loss [B]); success[b] holds only if z_adv[b] is finite and a fresh forward pass of
    logits_fn on x_adv[b] = decode_fn(z_adv)[b] gives finite, fooled logits.
  """
  spec = projected_gradient.StaticOptions(norm, steps, optimizer, restarts, init, loss,
                                          targeted, early_stop, unroll, max_rows, fast_convs)
  projected_gradient.validate_attack(spec, key, eps, step_size, z, y, box, "z", "box")
  validation.check_y_true(y_true, y, targeted)
  codes_to_logits = _codes_to_logits(decode_fn, logits_fn)
  model = projected_gradient.inspect_model(codes_to_logits, z)
  projected_gradient.check_model(model, z, y, y_true, targeted)
  spec = projected_gradient.resolve_loop(spec, codes_to_logits, z)
  step_size = projected_gradient.resolve_step_size(step_size, eps, spec)
  return projected_gradient.run_compiled(_latent_attack, (decode_fn, logits_fn), z, y, key, eps,
                                         step_size, box, spec=spec)
