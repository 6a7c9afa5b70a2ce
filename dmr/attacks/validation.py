"""Argument checks run before an attack is traced, with messages that say what to do.

Value checks (eps > 0, finite inputs inside the box) run only on concrete arrays; under an
outer jit or vmap the values are tracers and only shapes, dtypes and options are checked.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dmr.attacks import losses, optimizers, projections, starts


def is_concrete(*values) -> bool:
  """True when no value is a tracer (the call is eager, outside jit/vmap/grad)."""
  return not any(isinstance(v, jax.core.Tracer) for v in jax.tree_util.tree_leaves(values))


def _check_choice(name: str, value, allowed) -> None:
  if value not in allowed:
    raise ValueError(f"{name}={value!r} is not supported; use one of {list(allowed)}.")


def _check_count(name: str, value) -> None:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f"{name}={value!r} must be a Python int >= 1.")


def check_options(spec) -> None:
  """The static options of an attack (an AttackSpec)."""
  _check_choice("norm", spec.norm, projections.NORMS)
  _check_choice("optimizer", spec.optimizer, optimizers.OPTIMIZERS)
  _check_choice("init", spec.init, starts.INITS)
  _check_choice("loss", spec.loss, losses.LOSSES)
  _check_count("steps", spec.steps)
  _check_count("restarts", spec.restarts)
  for name in ("targeted", "early_stop", "unroll"):
    flag = getattr(spec, name)
    if not isinstance(flag, bool):
      raise ValueError(f"{name}={flag!r} must be a Python bool.")


def check_positive(name: str, value) -> None:
  """A scalar radius or step size: > 0 when concrete."""
  if value is None:
    return
  if np.ndim(value) != 0:
    raise ValueError(f"{name} must be a scalar, got shape {np.shape(value)}.")
  if is_concrete(value) and not float(value) > 0:
    raise ValueError(f"{name}={float(value)} must be > 0 (a finite, positive radius/step).")


def check_key(key) -> None:
  """A typed key (jax.random.key) or a raw uint32[2] key (jax.random.PRNGKey)."""
  dtype = jnp.result_type(key)
  if not (jnp.issubdtype(dtype, jax.dtypes.prng_key)
          or (np.shape(key) == (2,) and dtype == jnp.uint32)):
    raise ValueError("key must be a jax.random key, e.g. key=jax.random.key(0).")


def check_labels(x, y, what: str = "x") -> None:
  """y [B] of an integer dtype, with the batch size of x [B, ...]."""
  if np.ndim(x) < 1:
    raise ValueError(f"{what} must have a leading batch axis [B, ...], got shape {np.shape(x)}.")
  if not jnp.issubdtype(jnp.result_type(y), jnp.integer):
    raise ValueError(f"y must hold integer class labels, got dtype {jnp.result_type(y)}; "
                     "convert with y.astype(jnp.int32).")
  if np.shape(y) != (np.shape(x)[0],):
    raise ValueError(f"y must have shape [B] = ({np.shape(x)[0]},) to match {what} "
                     f"{np.shape(x)}, got {np.shape(y)}.")
  if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
    raise ValueError(f"{what} must be a floating array, got dtype {jnp.result_type(x)}.")


def check_bounds(bounds, name: str = "bounds") -> None:
  """None or a pair (lo, hi) with lo <= hi when concrete."""
  if bounds is None:
    return
  if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
    raise ValueError(f"{name} must be None or a pair (lo, hi), got {bounds!r}.")
  lo, hi = bounds
  if is_concrete(lo, hi) and not bool(np.all(np.asarray(lo) <= np.asarray(hi))):
    raise ValueError(f"{name}: lo must be <= hi everywhere.")


@jax.jit
def _finite_and_inside(x, lo, hi):
  return jnp.all(jnp.isfinite(x)), jnp.all((x >= lo) & (x <= hi))


def check_inputs(x, bounds, what: str = "x", box_name: str = "bounds") -> None:
  """x finite and inside the box (when concrete)."""
  if not is_concrete(x, bounds):
    return
  lo, hi = (-jnp.inf, jnp.inf) if bounds is None else bounds
  finite, inside = _finite_and_inside(x, lo, hi)
  if not finite:
    raise ValueError(f"{what} contains NaN or inf; attack only finite inputs.")
  if not inside:
    raise ValueError(f"{what} lies outside {box_name}={bounds!r}; clip it into the box "
                     f"(jnp.clip({what}, lo, hi)) or pass a wider {box_name} (None for no box).")


def check_logits(logits, y) -> None:
  """At trace time: logits_fn must return [B, K] with K >= 2 for the B inputs."""
  if logits.ndim != 2 or logits.shape[0] != y.shape[0] or logits.shape[1] < 2:
    raise ValueError(f"logits_fn must map a batch of {y.shape[0]} inputs to logits [B, K] with "
                     f"K >= 2 classes, got shape {logits.shape}.")
