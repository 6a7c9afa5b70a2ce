"""Attacking one trained classifier: off-manifold (image space) and on-manifold (latent or theta
space) success rates on the first test images, as PAPER.md defines them.

Rates are computed over the correctly classified inputs: the paper's rate averages over restarts,
the `_any` rate counts an input as broken when any restart succeeds (robust-accuracy convention).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dmr import attacks, learned_manifold, manifold, parallel
from dmr.fonts_manifold import make_decode_fn


class Rates(NamedTuple):
  success: float  # the paper's rate
  success_any: float  # worst case over restarts
  evaluated: int  # inputs attacked (after the |mu| <= 2 filter for learned manifolds)
  correct: int  # of those, correctly classified


def rates(success_per_restart: np.ndarray, correct: np.ndarray) -> Rates:
  """Rates from success [R, B] and correct [B] (see the module docstring)."""
  result = attacks.AttackResult(x_adv=None, success=success_per_restart.any(0),
                                success_per_restart=success_per_restart, loss=None)
  return Rates(float(attacks.success_rate(result, correct)),
               float(attacks.worst_case_success_rate(result, correct)),
               int(len(correct)), int(np.sum(correct)))


def unroll_on_cpu() -> bool:
  """XLA:CPU runs convolutions inside loop bodies ~5x slower (jax-ml/jax#12868): unroll there."""
  return jax.default_backend() == "cpu"


def attack_options(cfg: ml_collections.ConfigDict) -> dict:
  return dict(steps=cfg.steps, step_size=cfg.step_size, optimizer=cfg.optimizer, init=cfg.init,
              restarts=cfg.restarts, early_stop=True, unroll=unroll_on_cpu())


def static_options(cfg: ml_collections.ConfigDict) -> tuple:
  """attack_options as a hashable jit static argument."""
  return tuple(sorted(attack_options(cfg).items()))


@functools.partial(jax.jit, static_argnames=("norm", "options"))
def _pgd(logits_fn, x, y, key, eps, *, norm: str, options: tuple):
  """x_adv [B, ...] and success [B, R] of attacks.pgd; options: sorted (name, value) pairs."""
  r = attacks.pgd(logits_fn, x, y, key=key, eps=eps, norm=norm, bounds=(0.0, 1.0),
                  **dict(options))
  return r.x_adv, r.success_per_restart.T


def _predict(logits_fn, x):
  return jnp.argmax(logits_fn(x), axis=-1)


_predict_jit = jax.jit(_predict)


def predict(logits_fn, x, batch_size: int, mesh) -> np.ndarray:
  """Labels [N] predicted for the rows of x."""
  return parallel.map_in_batches(lambda xb: _predict_jit(logits_fn, xb), (x,), batch_size, mesh)


def off_manifold(logits_fn, x: np.ndarray, y: np.ndarray, cfg: ml_collections.ConfigDict,
                 key: jax.Array, mesh) -> tuple[Rates, np.ndarray]:
  """Regular attack (cfg: the config's `attack`) on images x [N, ...]; returns the rates and the
  adversarial examples [N, ...]."""
  options = static_options(cfg)
  attack = lambda xb, yb, k: _pgd(logits_fn, xb, yb, k, cfg.eps, norm=cfg.norm, options=options)
  x_adv, success = parallel.map_in_batches(attack, (x, y), cfg.batch_size, mesh, key)
  correct = predict(logits_fn, x, cfg.batch_size, mesh) == y
  return rates(success.T, correct), x_adv


class OnManifold(NamedTuple):
  rates: Rates
  x_on: np.ndarray  # [M, ...] the on-manifold images attacked (reconstructions or renderings)
  x_on_adv: np.ndarray  # [M, ...] their adversarial examples
  rows: np.ndarray  # [M] test rows attacked


def on_manifold_learned(logits_fn, vaes: learned_manifold.LearnedManifolds, x: np.ndarray,
                        y: np.ndarray, cfg: ml_collections.ConfigDict, key: jax.Array,
                        mesh) -> OnManifold:
  """The learned on-manifold attack: codes mu of the true class's encoder, |mu| <= 2 only,
  "correct" judged on the reconstruction dec_y(mu) (PAPER.md)."""
  mu = np.zeros((len(x), vaes.classes[0].box[0].shape[0]), np.float32)
  x_on = np.zeros_like(np.asarray(x))
  for k in np.unique(y):
    rows = np.flatnonzero(y == k)
    vae = vaes.classes[k]
    mu[rows] = learned_manifold.apply_in_batches(vae.encode_fn, x[rows], cfg.batch_size, mesh)
    x_on[rows] = learned_manifold.apply_in_batches(vae.decode_fn, mu[rows], cfg.batch_size, mesh)
  keep = np.flatnonzero(np.asarray(manifold.within_prior(mu)))
  result = manifold.attack_with_class_decoders(
      [v.decode_fn for v in vaes.classes], [v.box for v in vaes.classes], logits_fn, mu[keep],
      y[keep], key=key, eps=cfg.eps, batch_size=cfg.batch_size, mesh=mesh,
      **attack_options(cfg))
  correct = predict(logits_fn, x_on[keep], cfg.batch_size, mesh) == y[keep]
  return OnManifold(rates(result.success_per_restart, correct), x_on[keep], result.x_adv, keep)


@functools.partial(jax.jit, static_argnames=("options",))
def _theta_attack(logits_fn, prototypes, theta, y, key, eps, lo, hi, *, options: tuple):
  """x_adv [B, ...] and success [B, R] of attacks.latent_pgd over theta [B, 6]."""
  r = attacks.latent_pgd(make_decode_fn(prototypes), logits_fn, theta, y, key=key, eps=eps,
                         box=(lo, hi), **dict(options))
  return r.x_adv, r.success_per_restart.T


@jax.jit
def _render(prototypes, theta):
  return make_decode_fn(prototypes)(theta)


def on_manifold_true(logits_fn, prototypes: np.ndarray, theta: np.ndarray, y: np.ndarray,
                     theta_range, cfg: ml_collections.ConfigDict, key: jax.Array,
                     mesh) -> OnManifold:
  """The true on-manifold attack on FONTS: theta of each test image, L-inf eps in theta space,
  inside the data's theta range; prototypes [N, H, W, 1] of each row's (font, class)."""
  options, (lo, hi) = static_options(cfg), theta_range.box
  attack = lambda pb, tb, yb, k: _theta_attack(logits_fn, pb, tb, yb, k, cfg.eps, lo, hi,
                                                options=options)
  x_adv, success = parallel.map_in_batches(attack, (prototypes, theta, y), cfg.batch_size, mesh,
                                           key)
  x_on = parallel.map_in_batches(_render, (prototypes, theta), cfg.batch_size, mesh)
  correct = predict(logits_fn, x_on, cfg.batch_size, mesh) == y
  return OnManifold(rates(success.T, correct), x_on, x_adv, np.arange(len(y)))
