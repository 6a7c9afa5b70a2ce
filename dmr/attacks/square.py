"""Square Attack (Andriushchenko et al. 2020), L-inf: random search that never asks for a gradient.

A model that hides its gradient (a non-differentiable step, stop_gradient, saturated softmax)
defeats gradient attacks but not this one, so a large gap between the two is the sign of
gradient masking. Per image [H, W, C] (layout="NCHW": [C, H, W]), starting from vertical
stripes of +-eps:
  each query adds, inside one random s x s window, +-2 eps per channel to the best point so
  far, projects onto the eps-ball and the box, and keeps the result when it lowers the margin
  (label logit minus the best other logit) or fools the model. The window's area, a share p of
  the image, shrinks from p_init by halvings on the paper's schedule, rescaled to `queries`.
Rows stop changing once fooled; the loop ends once every row is fooled.

As `pgd`, Square computes in float32 (or wider); every point it evaluates is a value of the
input dtype exactly inside the ball and the box (projections.feasible_point), the model sees it
in the input dtype, and the returned x_adv is judged afresh.
"""
from __future__ import annotations

import dataclasses
import jax
import jax.numpy as jnp
import numpy as np

from dmr.attacks import losses, projections, validation
from dmr.attacks._execution import as_pytree_fn, inspect_model
from dmr.attacks.projected_gradient import AttackResult, LogitsFn, widen
from dmr.attacks.validation import check_model

# The window share halves after each of these iterations, on the paper's 10000-query scale.
_HALVINGS_AFTER = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


@dataclasses.dataclass(frozen=True)
class SquareSpec:
  """The static options of `square`; dtype: the name of the input dtype, which the model sees."""
  queries: int = 5000
  p_init: float = 0.8
  dtype: str = "float32"


def window_side(i, height: int, width: int, spec: SquareSpec):
  """Side s of the window at query i (traced int): round(sqrt(p * H * W)) in [1, min(H, W)]."""
  progress = (i * 10000) // spec.queries
  halvings = jnp.sum(progress > jnp.asarray(_HALVINGS_AFTER))
  share = spec.p_init / 2.0**halvings
  side = jnp.round(jnp.sqrt(share * height * width)).astype(jnp.int32)
  return jnp.clip(side, 1, min(height, width))


def _margin_and_success(logits_fn, x_adv, y, spec: SquareSpec):
  """(margin [N]: label logit minus best other, +inf where a logit is non-finite;
  success [N]: finite and misclassified). The model sees x_adv in the input dtype."""
  logits = logits_fn(x_adv.astype(spec.dtype)).astype(x_adv.dtype)
  validation.check_logits(logits, y)
  finite = jnp.all(jnp.isfinite(logits), axis=1)
  margin = jnp.where(finite, -losses.margin(logits, y), jnp.inf)
  return margin, losses.is_success(logits, y, False)


def _feasible(x, delta, eps, bounds, spec: SquareSpec):
  """x + delta [N, H, W, C] in the eps-ball and the box, a value of the input dtype."""
  return projections.feasible_point(x, projections.project_linf(delta, eps), eps, "linf",
                                    bounds, spec.dtype)


def _proposal(key, i, x, x_best, eps, bounds, spec: SquareSpec):
  """x_best with +-2 eps per channel added in one random window per image, made feasible."""
  batch, height, width, channels = x.shape
  side = window_side(i, height, width, spec)
  corner_key, sign_key = jax.random.split(key)
  corners = jax.random.randint(corner_key, (2, batch), 0, jnp.array([[height], [width]]) - side + 1)
  rows = jnp.arange(height)[None, :, None]
  cols = jnp.arange(width)[None, None, :]
  top, left = corners[0][:, None, None], corners[1][:, None, None]
  inside = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
  signs = jnp.where(jax.random.bernoulli(sign_key, 0.5, (batch, 1, 1, channels)), 1.0, -1.0)
  proposal = x_best + inside[..., None] * (2.0 * eps) * signs.astype(x.dtype)
  return _feasible(x, proposal - x, eps, bounds, spec)


def _start(logits_fn, x, y, key, eps, bounds, spec: SquareSpec):
  """(query key, carry (i, x_best, margin, success)) at the vertical-stripes start."""
  batch, _, width, channels = x.shape
  start_key, query_key = jax.random.split(key)
  stripes = jnp.where(jax.random.bernoulli(start_key, 0.5, (batch, 1, width, channels)),
                      eps, -eps)
  x_best = _feasible(x, stripes.astype(x.dtype), eps, bounds, spec)
  margin, success = _margin_and_success(logits_fn, x_best, y, spec)
  return query_key, (jnp.zeros((), jnp.int32), x_best, margin, success)


def _query(logits_fn, x, y, query_key, eps, bounds, carry, spec: SquareSpec):
  """One random-search query: the carry after trying one proposal per still-robust row."""
  i, x_best, margin, success = carry
  x_new = _proposal(jax.random.fold_in(query_key, i), i, x, x_best, eps, bounds, spec)
  margin_new, success_new = _margin_and_success(logits_fn, x_new, y, spec)
  take = ~success & (success_new | (margin_new < margin))
  x_best = jnp.where(projections.per_row(take, x), x_new, x_best)
  return i + 1, x_best, jnp.where(take, margin_new, margin), success | success_new


def _result(logits_fn, y, carry, spec: SquareSpec) -> AttackResult:
  """The AttackResult of the final carry: x_adv in the input dtype, judged afresh."""
  _, x_best, margin, _ = carry
  x_adv = x_best.astype(spec.dtype)
  success = losses.fools(logits_fn, x_adv, y)
  return AttackResult(x_adv, success, success[None], -margin)


def attack(logits_fn, x, y, key, eps, bounds, spec: SquareSpec) -> AttackResult:
  """The traced attack behind `square` (no validation)."""
  x, bounds = widen(x, bounds)
  query_key, carry = _start(logits_fn, x, y, key, eps, bounds, spec)
  carry = jax.lax.while_loop(
      lambda c: (c[0] < spec.queries) & ~jnp.all(c[3]),
      lambda c: _query(logits_fn, x, y, query_key, eps, bounds, c, spec), carry)
  return jax.lax.stop_gradient(_result(logits_fn, y, carry, spec))


compiled_attack = jax.jit(attack, static_argnames="spec")
_jit_widen = jax.jit(widen)
_jit_start = jax.jit(_start, static_argnames="spec")
_jit_query = jax.jit(_query, static_argnames="spec")
_jit_result = jax.jit(_result, static_argnames="spec")
HOST_CHECK_EVERY = 10   # host loop: queries between checks whether every row is fooled


def host_attack(logits_fn, x, y, key, eps, bounds, spec: SquareSpec) -> AttackResult:
  """`attack` with the query loop in Python, one compiled call per query (XLA:CPU runs
  convolutions with its fast kernels outside compiled loops); not traceable."""
  x, bounds = _jit_widen(x, bounds)
  query_key, carry = _jit_start(logits_fn, x, y, key, eps, bounds, spec)
  for i in range(spec.queries):
    if i % HOST_CHECK_EVERY == 0 and bool(jnp.all(carry[3])):
      break
    carry = _jit_query(logits_fn, x, y, query_key, eps, bounds, carry, spec)
  return _jit_result(logits_fn, y, carry, spec)


LAYOUTS = ("NHWC", "NCHW")


def check_layout(shape, layout: str) -> None:
  """Images of `shape` [B, ...] in `layout` ("NHWC" | "NCHW"): 4-D, and no channel dimension
  larger than a spatial one (a [B, 1, 28, 28] batch read as NHWC would be 1 x 28 pixels with 28
  channels)."""
  validation.check_choice("layout", layout, LAYOUTS)
  if len(shape) != 4:
    raise ValueError(f"square attacks images [B, H, W, C] (layout='NHWC') or [B, C, H, W] "
                     f"(layout='NCHW'); got x of shape {tuple(shape)}. Reshape flat inputs to "
                     "images inside logits_fn.")
  height, width, channels = shape[1:] if layout == "NHWC" else (shape[2], shape[3], shape[1])
  if channels > min(height, width):
    other = "NCHW" if layout == "NHWC" else "NHWC"
    raise ValueError(f"x of shape {tuple(shape)} read as {layout} has {channels} channels but "
                     f"{height} x {width} pixels; pass layout={other!r} if that is its layout.")


def _channels_last_model(logits_fn, x):
  """logits_fn of NCHW images, called on NHWC images x [N, H, W, C]."""
  return logits_fn(jnp.transpose(x, (0, 3, 1, 2)))


def _channels_last_bounds(bounds, shape):
  """bounds for NCHW images of `shape` [B, C, H, W], broadcast to one NHWC image."""
  if bounds is None:
    return None
  return tuple(b if np.ndim(b) == 0 else jnp.transpose(jnp.broadcast_to(b, shape[1:]), (1, 2, 0))
               for b in bounds)


def square(logits_fn: LogitsFn, x: jax.Array, y: jax.Array, *, key: jax.Array, eps: float,
           queries: int = 5000, p_init: float = 0.8, bounds: projections.Bounds = (0.0, 1.0),
           host_loop: bool = False, layout: str = "NHWC") -> AttackResult:
  """L-inf Square Attack: `queries` forward passes per image, no gradient.

  Args:
    logits_fn: images in `layout` [N, ...] -> logits [N, K], rows independent; never
      differentiated.
    x: clean images [B, H, W, C] (or [B, C, H, W] with layout="NCHW"), floating (float32,
      bfloat16, float16, float64), finite, inside `bounds`; the attack computes in float32 (or
      wider), the model sees x's dtype.
    y: int true labels [B] in [0, K).
    key: jax.random key.
    eps: L-inf radius (scalar > 0).
    queries: random-search iterations after the start (AutoAttack: 5000).
    p_init: share of the image the first windows cover (AutoAttack: 0.8).
    bounds: (lo, hi) box of valid inputs, or None.
    host_loop: one compiled call per query from Python (faster for conv models on XLA:CPU;
      not usable inside jax.jit/vmap) instead of a compiled loop.
    layout: "NHWC" (default) | "NCHW": where x keeps its channels (the windows are square in
      H x W). A batch whose channel dimension is larger than a spatial one is rejected: its
      layout is most likely the other one.

  Returns:
    AttackResult(x_adv [B, ...] in x's dtype, success [B], success_per_restart [1, B],
    loss [B]): x_adv is the first fooling point, else the lowest-margin one; loss is the margin
    of the best other class over the label at x_adv (> 0 iff fooled). Guarantees, as for
    `pgd`: x_adv is inside `bounds` and ||x_adv - x||_inf <= eps exactly in float32, and
    success[b] holds only if a fresh forward pass on x_adv[b] gives finite, fooled logits.
  """
  validation.check_count("queries", queries)
  if not 0.0 < float(p_init) <= 1.0:
    raise ValueError(f"p_init={p_init} must be in (0, 1].")
  validation.check_host_loop(host_loop, "queries", x, y, key, eps, bounds)
  validation.check_problem(key, eps, x, y, bounds)
  check_layout(np.shape(x), layout)
  check_model(inspect_model(logits_fn, x), x, y, None, False)
  spec = SquareSpec(queries, float(p_init), str(jnp.result_type(x)))
  run = host_attack if host_loop else compiled_attack
  if layout == "NHWC":
    return run(as_pytree_fn(logits_fn), x, y, key, eps, bounds, spec)
  model = jax.tree_util.Partial(_channels_last_model, as_pytree_fn(logits_fn))
  r = run(model, jnp.transpose(x, (0, 2, 3, 1)), y, key, eps,
          _channels_last_bounds(bounds, np.shape(x)), spec)
  return r._replace(x_adv=jnp.transpose(r.x_adv, (0, 3, 1, 2)))
