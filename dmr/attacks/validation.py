"""Argument checks run before an attack is traced, with messages that say what to do.

Value checks (eps > 0, finite inputs inside the box, labels in range) run only on concrete
arrays, eagerly even under an outer trace (a concrete x closed over by a jitted function); values
that are tracers (under an outer jit or vmap) get only their shapes, dtypes and options checked.
The entry point of pgd and latent_pgd is projected_gradient.validate_attack, of apgd and
latent_apgd apgd.validate; check_model runs once the model's output shape is known.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dmr.attacks import losses, optimizers, projections, starts


def is_concrete(*values) -> bool:
  """True when no value is a tracer (the call is eager, outside jit/vmap/grad)."""
  return not any(isinstance(v, jax.core.Tracer) for v in jax.tree_util.tree_leaves(values))


def check_choice(name: str, value, allowed) -> None:
  """value is one of `allowed`."""
  if value not in allowed:
    raise ValueError(f"{name}={value!r} is not supported; use one of {list(allowed)}.")


def check_count(name: str, value) -> None:
  """value is a Python (or numpy) int >= 1, not a bool."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f"{name}={value!r} must be a Python int >= 1.")


def check_flag(name: str, value) -> None:
  """value is a Python bool."""
  if not isinstance(value, bool):
    raise ValueError(f"{name}={value!r} must be a Python bool.")


def check_auto_flag(name: str, value) -> None:
  """value is True, False or "auto"."""
  if not (isinstance(value, bool) or value == "auto"):
    raise ValueError(f"{name}={value!r} must be True, False or \"auto\".")


def check_host_loop(host_loop, loop: str, *values) -> None:
  """host_loop is a bool, and False when any of `values` is a tracer: a loop over `loop`
  driven from Python cannot run under jax.jit/vmap."""
  check_flag("host_loop", host_loop)
  if host_loop and not is_concrete(*values):
    raise ValueError(f"host_loop=True drives the {loop} from Python and cannot run under "
                     "jax.jit/vmap; use host_loop=False there.")


def check_options(spec) -> None:
  """The static options of pgd's algorithm (projected_gradient.StaticOptions)."""
  check_choice("norm", spec.norm, projections.NORMS)
  check_choice("optimizer", spec.optimizer, optimizers.OPTIMIZERS)
  check_choice("init", spec.init, starts.INITS)
  check_choice("loss", spec.loss, losses.LOSSES)
  check_count("steps", spec.steps)
  check_count("restarts", spec.restarts)
  for name in ("targeted", "early_stop"):
    check_flag(name, getattr(spec, name))


def check_positive(name: str, value) -> None:
  """A scalar radius or step size: > 0 when concrete."""
  if value is None:
    return
  if np.ndim(value) != 0:
    raise ValueError(f"{name} must be a scalar, got shape {np.shape(value)}.")
  if not is_concrete(value):
    return
  with jax.ensure_compile_time_eval():
    positive = float(value) > 0
  if not positive:
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
  dtype = jnp.result_type(x)
  if dtype not in FLOAT_DTYPES:
    raise ValueError(f"{what} must be a floating array of dtype float32, bfloat16, float16 or "
                     f"float64, got dtype {dtype}; convert with {what}.astype(jnp.float32).")


FLOAT_DTYPES = tuple(jnp.dtype(d) for d in (jnp.float32, jnp.bfloat16, jnp.float16, jnp.float64))


def check_y_true(y_true, y, targeted: bool) -> None:
  """y_true: None, or (targeted attacks only) int labels with the shape of the targets y."""
  if y_true is None:
    return
  if not targeted:
    raise ValueError("y_true is for targeted attacks (targeted=True); an untargeted attack "
                     "takes the true labels as y.")
  if not jnp.issubdtype(jnp.result_type(y_true), jnp.integer) or np.shape(y_true) != np.shape(y):
    raise ValueError(f"y_true must hold integer labels of shape {np.shape(y)} like y, got "
                     f"{jnp.result_type(y_true)}{list(np.shape(y_true))}.")


def check_label_values(y, num_classes: int, name: str = "labels y") -> None:
  """Concrete labels in [0, num_classes): -1 padding or y = K would make a meaningless loss."""
  with jax.ensure_compile_time_eval():
    labels = np.asarray(y)
  bad = (labels < 0) | (labels >= num_classes)
  if bad.any():
    row = int(np.argmax(bad))
    raise ValueError(f"{name} must lie in [0, {num_classes}) for the model's {num_classes} "
                     f"classes; row {row} has {int(labels[row])} ({int(bad.sum())} rows out "
                     "of range). Drop padded rows before attacking.")


def check_targets(y, y_true, targeted: bool) -> None:
  """Concrete targets different from the true labels (such a targeted attack means nothing)."""
  with jax.ensure_compile_time_eval():
    same = np.asarray(y) == np.asarray(y_true)
  if targeted and same.any():
    raise ValueError(f"targeted attack: target y equals the true label y_true in "
                     f"{int(same.sum())} rows (first: row {int(np.argmax(same))}); choose "
                     "targets different from the true labels.")


def check_bounds(bounds, name: str = "bounds") -> None:
  """None or a pair (lo, hi) with lo <= hi when concrete."""
  if bounds is None:
    return
  if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
    raise ValueError(f"{name} must be None or a pair (lo, hi), got {bounds!r}.")
  lo, hi = bounds
  if not is_concrete(lo, hi):
    return
  with jax.ensure_compile_time_eval():
    ordered = bool(np.all(np.asarray(lo) <= np.asarray(hi)))
  if not ordered:
    raise ValueError(f"{name}: lo must be <= hi everywhere.")


@jax.jit
def _finite_and_inside(x, lo, hi):
  return jnp.all(jnp.isfinite(x)), jnp.all((x >= lo) & (x <= hi))


def check_inputs(x, bounds, what: str = "x", box_name: str = "bounds") -> None:
  """x finite and inside the box (when concrete)."""
  if not is_concrete(x, bounds):
    return
  lo, hi = (-jnp.inf, jnp.inf) if bounds is None else bounds
  with jax.ensure_compile_time_eval():
    finite, inside = _finite_and_inside(x, lo, hi)
  if not finite:
    raise ValueError(f"{what} contains NaN or inf; attack only finite inputs.")
  if not inside:
    raise ValueError(f"{what} lies outside {box_name}={bounds!r}; clip it into the box "
                     f"(jnp.clip({what}, lo, hi)) or pass a wider {box_name} (None for no box).")


def check_problem(key, eps, x, y, bounds, what: str = "x", box_name: str = "bounds") -> None:
  """What every attack is given: a key, a radius eps > 0, inputs x [B, ...] with labels y [B],
  and the box."""
  check_key(key)
  check_positive("eps", eps)
  check_labels(x, y, what)
  check_bounds(bounds, box_name)
  check_inputs(x, bounds, what, box_name)


def check_logits(logits, y) -> None:
  """At trace time: logits_fn must return [B, K] with K >= 2 for the B inputs."""
  if logits.ndim != 2 or logits.shape[0] != y.shape[0] or logits.shape[1] < 2:
    raise ValueError(f"logits_fn must map a batch of {y.shape[0]} inputs to logits [B, K] with "
                     f"K >= 2 classes, got shape {logits.shape}.")


def check_model(model, x, y, y_true, targeted: bool) -> None:
  """Checks that need the model's output (model.logits, a shape and dtype): logits [B, K], and
  when concrete, labels in [0, K) and targets different from y_true."""
  logits = model.logits
  if len(logits.shape) != 2 or logits.shape[0] != np.shape(x)[0] or logits.shape[1] < 2:
    raise ValueError(f"logits_fn must map a batch of {np.shape(x)[0]} inputs to logits [B, K] "
                     f"with K >= 2 classes, got shape {logits.shape}.")
  if not is_concrete(y, y_true):
    return
  check_label_values(y, logits.shape[1], "targets y" if targeted else "labels y")
  if y_true is not None:
    check_targets(y, y_true, targeted)
