"""Any JAX function's 2D convolutions recomputed in dmr's fast forms (dmr.models.convs).

`with_fast_convs(fn)` is fn with every lax.conv_general_dilated it runs (two spatial dims, no
dilation, no feature or batch groups, padding >= 0, any dimension order) computed by
convs.strided_conv: the same values up to float rounding, and input gradients that are matrix
products, which XLA:CPU computes several times faster than a conv's, inside loops too. Other
convs and every other operation run as they are. fn is traced once per input shape and its
equations replayed, so the result works under jit, vmap and grad, with params that are tracers.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.extend
import jax.numpy as jnp

from dmr.models import convs


def _covered(lhs, params) -> bool:
  """Whether convs.strided_conv computes the conv of these equation params."""
  ones = lambda values: all(v == 1 for v in values)
  return (lhs.ndim == 4 and ones(params["lhs_dilation"]) and ones(params["rhs_dilation"])
          and params["feature_group_count"] == 1 and params["batch_group_count"] == 1
          and all(p >= 0 for pair in params["padding"] for p in pair)
          and params.get("preferred_element_type") in (None, lhs.dtype))


def fast_conv(lhs: jax.Array, rhs: jax.Array, params: dict) -> jax.Array:
  """lax.conv_general_dilated(lhs, rhs, **params) (params of a covered conv equation) by
  convs.strided_conv, in the equation's dimension order; `precision` is not applied."""
  spec = params["dimension_numbers"]
  x = jnp.transpose(lhs, (spec.lhs_spec[0], *spec.lhs_spec[2:], spec.lhs_spec[1]))
  kernel = jnp.transpose(rhs, (*spec.rhs_spec[2:], spec.rhs_spec[1], spec.rhs_spec[0]))
  out = convs.strided_conv(x, kernel, params["window_strides"], params["padding"])
  order = [0] * 4
  for nhwc_axis, out_axis in zip((0, 3, 1, 2), spec.out_spec):
    order[out_axis] = nhwc_axis
  return jnp.transpose(out, order)


def _replay(jaxpr, consts, args) -> list:
  """Evaluates jaxpr on consts and args, covered convs in the fast form; jit calls are
  entered, every other equation is bound as it is."""
  env = {}
  read = lambda v: v.val if isinstance(v, jax.extend.core.Literal) else env[v]
  env.update(zip(jaxpr.constvars, consts))
  env.update(zip(jaxpr.invars, args))
  for eqn in jaxpr.eqns:
    values = [read(v) for v in eqn.invars]
    if eqn.primitive.name == "conv_general_dilated" and _covered(values[0], eqn.params):
      outputs = [fast_conv(*values, eqn.params)]
    elif eqn.primitive.name == "jit":
      closed = eqn.params["jaxpr"]
      outputs = _replay(closed.jaxpr, closed.consts, values)
    else:
      with eqn.ctx.manager:
        outputs = eqn.primitive.bind(*values, **eqn.primitive.get_bind_params(eqn.params))
      outputs = outputs if eqn.primitive.multiple_results else [outputs]
    env.update(zip(eqn.outvars, outputs))
  return [read(v) for v in jaxpr.outvars]


@dataclasses.dataclass(frozen=True)
class _FastConvs:
  """fn(*args) with its convs in the fast form; equal (and hashable) by fn, so a
  jax.tree_util.Partial of it reuses compilations as one of fn does."""
  fn: Callable

  def __call__(self, *args):
    closed, out_shape = jax.make_jaxpr(self.fn, return_shape=True)(*args)
    outputs = _replay(closed.jaxpr, closed.consts, jax.tree.leaves(args))
    return jax.tree.unflatten(jax.tree.structure(out_shape), outputs)


def with_fast_convs(fn: Callable) -> Callable:
  """fn (positional arguments only) with its covered convs in the fast form; a
  jax.tree_util.Partial stays one over the same arguments."""
  if isinstance(fn, jax.tree_util.Partial):
    return jax.tree_util.Partial(_FastConvs(fn.func), *fn.args, **fn.keywords)
  return _FastConvs(fn)
