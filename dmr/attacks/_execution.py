"""How an attack runs, never what it computes: compile reuse, the step loop's form, the conv
forms the steps differentiate, and chunking of restarts by max_rows.

`Execution` holds the options as the user gave them ("auto" allowed) and, once resolved for a
model and an input shape, as the plain values an attack's traced code reads (a jit static
argument). None of them changes an attack's result beyond float rounding (fast_convs) or not at
all (unroll, host_loop, max_rows).

Why these options exist: XLA:CPU compiles the convolutions of input gradients inside loop bodies
to a slow generic kernel (jax-ml/jax#12868). Three ways around it: compute the model's convs in
dmr's forms, whose input gradients are matrix products (fast_convs, dmr.models.conv_rewrite);
unroll the step loop (compile time grows with the steps); or drive the steps from Python, one
compiled call each (host_loop: not traceable). "auto" picks them on CPU only, and only for a
model whose input gradient convolves (backward_convolves: a walk over its jaxpr).
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import inspect
from typing import Any, Callable, NamedTuple

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np

from dmr.attacks import validation
from dmr.models import conv_rewrite


@dataclasses.dataclass(frozen=True)
class Execution:
  """unroll, fast_convs: True, False or "auto" (bools once resolved); host_loop: a Python loop
  of compiled steps (APGD only); max_rows: None, or the most rows one chunk of restarts runs
  (pgd only)."""
  unroll: bool | str = "auto"
  fast_convs: bool | str = "auto"
  host_loop: bool = False
  max_rows: int | None = None

  def validate(self) -> None:
    """The option checks, before tracing."""
    validation.check_auto_flag("unroll", self.unroll)
    validation.check_auto_flag("fast_convs", self.fast_convs)
    validation.check_flag("host_loop", self.host_loop)
    if self.max_rows is not None:
      validation.check_count("max_rows", self.max_rows)

  def resolve(self, fn: Callable, x) -> Execution:
    """For loops short enough to unroll (pgd): fast_convs and unroll by resolve_stepping."""
    fast_convs, unroll = resolve_stepping(self.fast_convs, self.unroll, fn, x)
    return dataclasses.replace(self, fast_convs=fast_convs, unroll=unroll)

  def resolve_long_loop(self, fn: Callable, x, eager: bool) -> Execution:
    """For loops too long to unroll by default (APGD's 100 steps): fast_convs by
    resolve_stepping; the loop by choose_loop (host_loop set when it is the host loop)."""
    auto_unroll = "auto" if self.unroll == "auto" else False
    fast_convs, unroll_pays = resolve_stepping(self.fast_convs, auto_unroll, fn, x)
    loop = choose_loop(self.unroll, self.host_loop, unroll_pays, eager)
    return dataclasses.replace(self, fast_convs=fast_convs, unroll=loop == "unrolled",
                               host_loop=loop == "host")

  def stepping_fn(self, logits_fn: Callable) -> Callable:
    """The function the steps evaluate and differentiate: logits_fn, or with fast_convs its
    convs in dmr's forms (an attack's success is judged by logits_fn itself)."""
    return conv_rewrite.with_fast_convs(logits_fn) if self.fast_convs else logits_fn


def choose_loop(unroll: bool | str, host_loop: bool, unroll_pays: bool, eager: bool) -> str:
  """How a long step loop runs: "host" (a Python loop of compiled steps), "unrolled", or
  "rolled" (a lax.while_loop).

  host_loop=True: "host". unroll="auto" never unrolls: compiling 100 unrolled APGD steps of a
  conv model takes minutes. Where unrolling would pay (unroll_pays: resolve_stepping's "auto",
  on CPU a model whose input gradient convolves, which XLA:CPU runs slowly inside compiled
  loops) it picks "host" when called eagerly (fast kernels, compiled in seconds) and "rolled"
  under jax.jit/vmap.
  """
  if host_loop:
    return "host"
  if unroll == "auto":
    return "host" if eager and unroll_pays else "rolled"
  return "unrolled" if unroll else "rolled"


def resolve_stepping(fast_convs: bool | str, unroll: bool | str, fn: Callable,
                     x) -> tuple[bool, bool]:
  """(fast_convs, unroll) resolved for fn on inputs like x. On CPU, "auto" fast_convs is
  backward_convolves(fn, x), and "auto" unroll is backward_convolves of the function the steps
  then differentiate, fn or its fast form (XLA:CPU runs gradient convs slowly inside loop
  bodies, jax-ml/jax#12868; dmr's conv models have none: their convs' input gradients are matrix
  products, dmr.models.convs). Elsewhere both are False. Each function's gradient is traced at
  most once."""
  on_cpu = jax.default_backend() == "cpu"
  needed = fast_convs == "auto" or (unroll == "auto" and not fast_convs)
  convolves = on_cpu and needed and backward_convolves(fn, x)
  if fast_convs == "auto":
    fast_convs = convolves
  if unroll == "auto":
    unroll = convolves if not fast_convs else (
        on_cpu and backward_convolves(conv_rewrite.with_fast_convs(fn), x))
  return fast_convs, unroll


# Chunks of restarts (max_rows).

def restarts_per_chunk(batch: int, restarts: int, max_rows: int | None) -> int:
  """Restarts run together: all of them, or as many as fit in max_rows rows (at least one)."""
  if max_rows is None:
    return restarts
  return max(1, min(restarts, max_rows // max(batch, 1)))


def _merge_chunks(v, batch: int, restarts: int):
  """Chunks [C, B * chunk, ...] (row b * chunk + j: restart c * chunk + j) -> the rows
  [B * restarts, ...] of one call (row b * restarts + r), dropping restarts beyond `restarts`."""
  chunks, rows = v.shape[:2]
  v = v.reshape((chunks, batch, rows // batch) + v.shape[2:])
  v = jnp.moveaxis(v, 0, 1).reshape((batch, rows // batch * chunks) + v.shape[3:])
  return v[:, :restarts].reshape((batch * restarts,) + v.shape[2:])


def in_restart_chunks(run: Callable, batch: int, restarts: int, max_rows: int | None):
  """run(first, count) -> a pytree of rows [B * count, ...] (row b * count + j: restart
  first + j), evaluated for all restarts at once or, with max_rows, in sequential chunks (a
  lax.map) merged into the rows [B * restarts, ...] of one call."""
  chunk = restarts_per_chunk(batch, restarts, max_rows)
  if chunk == restarts:
    return run(0, chunk)
  chunks = -(-restarts // chunk)
  parts = jax.lax.map(lambda first: run(first, chunk), chunk * jnp.arange(chunks))
  return jax.tree.map(lambda v: _merge_chunks(v, batch, restarts), parts)


# Compile reuse.

def _holds_arrays(value) -> bool:
  """Arrays among the pytree leaves of value or of its attributes (one level down)."""
  attributes = list(getattr(value, "__dict__", {}).values())
  leaves = jax.tree_util.tree_leaves([value, attributes])
  return any(isinstance(leaf, (jax.Array, np.ndarray)) for leaf in leaves)


def is_reusable(fn) -> bool:
  """fn can be a cached compilation's argument: a jax.tree_util.Partial whose function holds no
  arrays (in a closure or as the object of a bound method); its arrays are traced leaves."""
  if not isinstance(fn, jax.tree_util.Partial):
    return False
  func = fn.func
  owners = [cell.cell_contents for cell in (getattr(func, "__closure__", None) or ())]
  if inspect.ismethod(func):
    owners.append(func.__self__)
  return not any(_holds_arrays(owner) for owner in owners)


class _CompiledPerCall:
  """A callable that is a jit static value equal only to itself: compiled anew for each call."""

  def __init__(self, fn):
    self.fn = fn

  def __call__(self, *args):
    return self.fn(*args)


def as_pytree_fn(fn) -> jax.tree_util.Partial:
  """fn as a jax.tree_util.Partial that can be a jit argument and never runs stale.

  A reusable Partial (see is_reusable) is returned as it is: its arrays are traced, so new
  params reuse the compiled program. Any other callable may hold state that changes between
  calls (an NNX module, an object with params, a closure), so it is wrapped in a static value
  equal only to itself: each call compiles anew and sees the model as it is now.
  """
  return fn if is_reusable(fn) else jax.tree_util.Partial(_CompiledPerCall(fn))


def run_compiled(traced_fn: Callable, model_fns: tuple, *args, **static) -> Any:
  """traced_fn(*model_fns, *args, **static) under jax.jit with the keyword arguments static:
  through one cached compilation when every model function is reusable (see is_reusable), else
  compiled for this call only."""
  names = tuple(sorted(static))
  if all(is_reusable(fn) for fn in model_fns):
    return _cached_jit(traced_fn, names)(*model_fns, *args, **static)
  once = jax.jit(functools.partial(traced_fn, *model_fns), static_argnames=names)
  return once(*args, **static)


@functools.cache
def _cached_jit(traced_fn: Callable, static_argnames: tuple[str, ...]) -> Callable:
  return jax.jit(traced_fn, static_argnames=static_argnames)


# Abstract evaluations of the model: its output, and whether its input gradient convolves.

def _input_gradient(fn, x):
  return jax.grad(lambda x: jnp.sum(fn(x), dtype=jnp.float32))(x)


def _logits(fn, x):
  return fn(x)


_TRACED = {"logits": _logits, "gradient": _input_gradient}
_REUSABLE = {name: jax.jit(fn) for name, fn in _TRACED.items()}


class ModelInfo(NamedTuple):
  """What an abstract evaluation of logits_fn on x tells: its output."""
  logits: jax.ShapeDtypeStruct


def _live_equations(jaxpr, live_outputs) -> list:
  """The equations jaxpr runs to compute its outputs marked live, as XLA would after removing
  dead code: a jit call is entered with its own live outputs, other nested jaxprs count whole.
  E.g. a custom VJP's backward rule may compute a kernel gradient that an input gradient never
  uses."""
  is_var = lambda v: isinstance(v, jax.extend.core.Var)
  live = {v for v, used in zip(jaxpr.outvars, live_outputs) if used and is_var(v)}
  equations = []
  for eqn in reversed(jaxpr.eqns):
    used = [is_var(v) and v in live for v in eqn.outvars]
    if not any(used):
      continue
    equations.append(eqn)
    if eqn.primitive.name == "jit":
      equations += _live_equations(eqn.params["jaxpr"].jaxpr, used)
    else:
      for inner in jax.extend.core.jaxprs_in_params(eqn.params):
        equations += _live_equations(inner, [True] * len(inner.outvars))
    live.update(filter(is_var, eqn.invars))
  return equations


def _convolutions(traced) -> collections.Counter:
  """The live convs of a traced function, each as (operand types, params)."""
  jaxpr = traced.jaxpr.jaxpr
  return collections.Counter(
      (tuple(str(v.aval) for v in eqn.invars), str(eqn.params))
      for eqn in _live_equations(jaxpr, [True] * len(jaxpr.outvars))
      if eqn.primitive.name == "conv_general_dilated")


def _trace(name: str, fn: Callable, x):
  """The abstract evaluation of _TRACED[name] on fn and x's shape and dtype (no compilation):
  cached for a reusable fn, so new params add no trace; traced afresh for any other fn."""
  like = jax.ShapeDtypeStruct(np.shape(x), jnp.result_type(x))
  if is_reusable(fn):
    return _REUSABLE[name].trace(fn, like)
  return jax.jit(functools.partial(_TRACED[name], fn)).trace(like)


def inspect_model(fn: Callable, x) -> ModelInfo:
  """fn's output on inputs like x, from an abstract evaluation."""
  logits = _trace("logits", fn, x).jaxpr.out_avals[0]
  return ModelInfo(jax.ShapeDtypeStruct(logits.shape, logits.dtype))


def backward_convolves(fn: Callable, x) -> bool:
  """Whether fn's input gradient at inputs like x computes convolutions that its forward pass
  does not: the gradient convs XLA:CPU runs slowly inside loops (abstract evaluations only)."""
  return bool(_convolutions(_trace("gradient", fn, x)) - _convolutions(_trace("logits", fn, x)))
