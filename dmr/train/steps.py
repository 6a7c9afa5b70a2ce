"""Classifier train and eval steps as pure functions of (state, batch).

A training variant (docs/protocol.md#training-variants) differs only in the function that produces
the second half of each batch: `second_half(logits_fn, x, y, key, aux) -> x'` for the rows
x [B/2, ...] (an attack, an augmentation), where logits_fn is the classifier at the current params
in inference mode (the paper attacks it so) and aux holds the rows' per-example extras (latent
codes, row indices) or None; None trains on the clean batch.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

SecondHalfFn = Callable[..., jax.Array]


@flax.struct.dataclass
class TrainState:
  """A classifier's or a VAE-GAN's training state (VAE-GAN: params and batch_stats keyed by
  network)."""
  step: jax.Array  # int32 scalar: batches trained so far.
  params: dict
  batch_stats: dict
  opt_state: optax.OptState


def init_state(model: nn.Module, tx: optax.GradientTransformation, key: jax.Array,
               image_shape: tuple[int, ...]) -> TrainState:
  """The initial state; compiled as one program (op by op, init costs ~150 small compiles)."""

  @jax.jit
  def init(key):
    variables = model.init(key, jnp.zeros((1,) + tuple(image_shape), jnp.float32), train=False)
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params))

  return init(key)


def weighted_mean(values: jax.Array, weight: jax.Array) -> jax.Array:
  return jnp.sum(values * weight) / jnp.maximum(jnp.sum(weight), 1.0)


@dataclasses.dataclass(frozen=True)
class _ApplyInInferenceMode:
  model: nn.Module

  def __call__(self, variables, x):
    return self.model.apply(variables, x, train=False)


def make_logits_fn(model: nn.Module, params: dict, batch_stats: dict) -> jax.tree_util.Partial:
  """logits_fn(x [B, H, W, C]) -> logits [B, K], BatchNorm in inference mode; a pure function.

  A jax.tree_util.Partial with the variables as pytree leaves: jitted code taking it as an
  argument compiles once for every model of the same architecture.
  """
  return jax.tree_util.Partial(_ApplyInInferenceMode(model),
                               {"params": params, "batch_stats": batch_stats})


def make_train_step(model: nn.Module, tx: optax.GradientTransformation,
                    second_half: Optional[SecondHalfFn] = None, half: Optional[int] = None):
  """train_step(state, x, y, weight, key, aux=None) -> (state, metrics), to be jitted.

  x [B, H, W, C], y [B] int32, weight [B] (0 marks padding rows), aux [B, ...] or None. With
  `second_half`, rows half.. (default B/2; pass batch_size // 2 when batches carry padding rows
  at their end) are replaced by second_half(...) of themselves, computed with the current params
  (no gradient flows through it), and the loss is the mean over both halves.
  """

  def train_step(state: TrainState, x, y, weight, key, aux=None):
    if second_half is not None:
      split = x.shape[0] // 2 if half is None else half
      aux_half = None if aux is None else aux[split:]
      logits_fn = make_logits_fn(model, state.params, state.batch_stats)
      x_new = second_half(logits_fn, x[split:], y[split:], key, aux_half)
      x = x.at[split:].set(jax.lax.stop_gradient(x_new))

    def loss_fn(params):
      logits, updates = model.apply({"params": params, "batch_stats": state.batch_stats}, x,
                                    train=True, mask=weight > 0, mutable=["batch_stats"])
      loss = weighted_mean(optax.softmax_cross_entropy_with_integer_labels(logits, y), weight)
      return loss, (logits, updates["batch_stats"])

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    state = TrainState(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                       batch_stats=batch_stats, opt_state=opt_state)
    error = weighted_mean((jnp.argmax(logits, -1) != y).astype(jnp.float32), weight)
    return state, {"loss": loss, "train_error": error}

  return train_step
