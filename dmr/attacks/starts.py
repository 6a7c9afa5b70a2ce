"""Starting perturbations of the attacks: "uniform" in the eps-ball, the paper's, or zero.

Each start is built from ONE uniform draw per restart, transformed by inverse CDFs (Gaussian:
ndtri; exponential: -log), which keeps compilation fast (one random kernel per attack).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtri

from dmr.attacks import projections


def _open_uniform(key, rows: int, columns: int, dtype):
  """U(0, 1) excluding 0, [rows, columns]."""
  return jax.random.uniform(key, (rows, columns), dtype, minval=jnp.finfo(dtype).tiny)


def _unit_rows(v, norm: str):
  """v [N, D] scaled to unit `norm` per row."""
  return v / projections.lp_norm(v, norm)[:, None]


def uniform_in_ball(key: jax.Array, shape: tuple[int, ...], eps, norm: str,
                    dtype=jnp.float32) -> jax.Array:
  """Samples [N, ...] uniformly distributed in the `norm` ball of radius eps (per row).

  linf: U(-eps, eps) per coordinate. l2: a Gaussian direction times eps * U^(1/D).
  l1: random signs times the first D of D + 1 normalized exponentials (a Dirichlet(1, ..., 1)
  sample, uniform on {y >= 0, sum y <= 1}), times eps.
  """
  if norm == "linf":
    return jax.random.uniform(key, shape, dtype, -eps, eps)
  rows, dim = shape[0], math.prod(shape[1:])
  if norm == "l2":
    u = _open_uniform(key, rows, dim + 1, dtype)
    direction = _unit_rows(ndtri(u[:, :dim]), "l2")
    return (eps * u[:, dim:] ** (1.0 / dim) * direction).reshape(shape)
  u = _open_uniform(key, rows, 2 * dim + 1, dtype)
  exponential = -jnp.log(u[:, :dim + 1])
  signs = jnp.where(u[:, dim + 1:] < 0.5, -1.0, 1.0).astype(dtype)
  simplex = exponential[:, :dim] / jnp.sum(exponential, axis=1, keepdims=True)
  return (eps * signs * simplex).reshape(shape)


def paper_start(key: jax.Array, shape: tuple[int, ...], eps, norm: str,
                dtype=jnp.float32) -> jax.Array:
  """The paper's start [N, ...]: a Gaussian direction normalized in `norm`, times eps * U(0, 1)."""
  rows, dim = shape[0], math.prod(shape[1:])
  u = _open_uniform(key, rows, dim + 1, dtype)
  return (eps * u[:, dim:] * _unit_rows(ndtri(u[:, :dim]), norm)).reshape(shape)


def zero_start(key: jax.Array, shape: tuple[int, ...], eps, norm: str,
               dtype=jnp.float32) -> jax.Array:
  """No perturbation, [N, ...]."""
  del key, eps, norm
  return jnp.zeros(shape, dtype)


_STARTS = {"uniform": uniform_in_ball, "paper": paper_start, "zero": zero_start}
INITS = tuple(_STARTS)


def restart_perturbations(key: jax.Array, shape: tuple[int, ...], eps, norm: str, init: str,
                          restarts: int, dtype=jnp.float32, first=0) -> jax.Array:
  """Starting perturbations of restarts first, ..., first + restarts - 1, [R, N, ...].

  Restart r draws from fold_in(key, r), so the first restarts of a run with more restarts
  are exactly those of a run with fewer, and a chunk of restarts (first > 0) draws exactly
  what one call with all restarts draws for them.
  """
  start = lambda r: _STARTS[init](jax.random.fold_in(key, r), shape, eps, norm, dtype)
  return jax.lax.map(start, first + jnp.arange(restarts))  # a loop: cheaper to compile than vmap
