"""Models of Flax linen, Flax NNX and Equinox as `logits_fn`s whose arrays are traced arguments.

Each adapter returns a jax.tree_util.Partial: its arrays (params, BatchNorm statistics) are
pytree leaves, and the rest (the module's definition) is a static value compared by equality.
An attack compiles once per architecture and reuses the program for new params, and always
runs with the params given:

  logits_fn = attacks.from_linen(model, variables, train=False)   # flax.linen
  model.eval(); logits_fn = attacks.from_nnx(model)              # flax.nnx, BatchNorm in eval mode
  logits_fn = attacks.from_equinox(model)                         # equinox, per-example model

Building the adapter again after the params change (a training step, an in-place update of an
NNX module) is cheap: it only splits the model. This module imports neither flax nor equinox.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax


@dataclasses.dataclass(frozen=True)
class _LinenApply:
  """module.apply(variables, x, **kwargs); hashable, so it is a static part of a Partial."""
  module: Any
  kwargs: tuple[tuple[str, Any], ...]

  def __call__(self, variables, x):
    return self.module.apply(variables, x, **dict(self.kwargs))


def from_linen(module: Any, variables: Any, **apply_kwargs: Any) -> jax.tree_util.Partial:
  """A flax.linen module as logits_fn: x [N, ...] -> module.apply(variables, x, **apply_kwargs).

  variables: the whole variables dict ({"params": ..., "batch_stats": ...}); apply_kwargs:
  hashable keyword arguments that put the model in inference mode, e.g. train=False (so
  BatchNorm uses its running averages and dropout is off; the attack mutates no collection).
  """
  return jax.tree_util.Partial(_LinenApply(module, tuple(sorted(apply_kwargs.items()))),
                               variables)


@dataclasses.dataclass(frozen=True)
class _NnxApply:
  """nnx.merge(graphdef, state)(x); the graphdef is hashable."""
  graphdef: Any

  def __call__(self, state, x):
    from flax import nnx
    return nnx.merge(self.graphdef, state)(x)


def from_nnx(model: Any) -> jax.tree_util.Partial:
  """A flax.nnx module as logits_fn, split into its static graphdef and its traced state.

  Call model.eval() first when it has BatchNorm or Dropout. The state is taken now: after
  changing the model (training, in-place updates) build the logits_fn again.
  """
  from flax import nnx
  graphdef, state = nnx.split(model)
  return jax.tree_util.Partial(_NnxApply(graphdef), state)


@dataclasses.dataclass(frozen=True)
class _EquinoxApply:
  """eqx.combine(arrays, static) applied to a batch (vmapped over rows when per_example)."""
  static: Any
  per_example: bool

  def __call__(self, arrays, x):
    import equinox as eqx
    model = eqx.combine(arrays, self.static)
    return jax.vmap(model)(x) if self.per_example else model(x)


def from_equinox(model: Callable, per_example: bool = True) -> jax.tree_util.Partial:
  """An equinox module as logits_fn, partitioned into traced arrays and a static rest.

  per_example: Equinox models usually take one example x [...] -> logits [K] and are vmapped
  over the batch (True); pass False for a model that already takes a batch. For inference-mode
  layers, pass the model after eqx.nn.inference_mode(model).
  """
  import equinox as eqx
  arrays, static = eqx.partition(model, eqx.is_array)
  return jax.tree_util.Partial(_EquinoxApply(static, per_example), arrays)
