"""On-manifold attacks: `pgd` over a latent code or transformation parameters z [B, d]."""
from __future__ import annotations

from typing import NamedTuple

import jax

from dmr.attacks import projected_gradient


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


def _latent_attack(decode_fn, logits_fn, z, y, key, eps, step_size, box, spec):
  classify = jax.tree_util.Partial(_decode_then_classify, decode_fn, logits_fn, z.shape[0])
  result = projected_gradient.attack(classify, z, y, key, eps, step_size, box, spec)
  return LatentAttackResult(z_adv=result.x_adv, x_adv=decode_fn(result.x_adv),
                            success=result.success,
                            success_per_restart=result.success_per_restart, loss=result.loss)


_compiled_latent_attack = jax.jit(_latent_attack, static_argnames="spec")


def latent_pgd(decode_fn, logits_fn, z, y, *, key, eps, norm: str = "linf", box=None,
               steps: int = 40, step_size=None, optimizer: str = "sign", restarts: int = 1,
               init: str = "uniform", loss: str = "ce", targeted: bool = False,
               early_stop: bool = True, unroll: bool = False) -> LatentAttackResult:
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
    Other arguments: see `pgd` (defaults: sign -> 2.5 * eps / steps; adam -> 0.005).

  Returns:
    LatentAttackResult(z_adv [B, d], x_adv [B, ...], success [B], success_per_restart [R, B],
    loss [B]).
  """
  spec = projected_gradient.AttackSpec(norm, steps, optimizer, restarts, init, loss, targeted,
                                       early_stop, unroll)
  projected_gradient.validate_attack(spec, key, eps, step_size, z, y, box, "z", "box")
  step_size = projected_gradient.resolve_step_size(step_size, eps, spec)
  return _compiled_latent_attack(projected_gradient.as_pytree_fn(decode_fn),
                                 projected_gradient.as_pytree_fn(logits_fn), z, y, key, eps,
                                 step_size, box, spec)
