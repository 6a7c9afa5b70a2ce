"""VAE-GAN training (docs/protocol.md#vae-gan): the three losses and optimizers as one jitted step.

Per image x with q(z | x) = N(mu, exp(log_var)), z = mu + exp(log_var / 2) * noise,
x_rec = dec(z) and the discriminator's logit D(.), the losses, summed over the batch, are
  encoder:        KL(q(z | x) || N(0, I)) + beta * |x - x_rec|_1 + gamma * GAN
  decoder:        beta * |x - x_rec|_1 + gamma * GAN,        GAN = -log sigmoid(D(x_rec))
  discriminator:  gamma * (-log sigmoid(D(x)) - log(1 - sigmoid(D(x_rec)))).
As in the paper's code, the discriminator sees real images against reconstructions only (no prior
samples): the on-manifold attack decodes codes near encoder means, which is what reconstructions
are; prior samples would cost another decoder and discriminator pass per step.

The three gradients are taken at the same parameters (as the paper's code does with one forward
pass and three backward passes): one gradient of
  encoder loss [discriminator params held fixed] + discriminator loss [x_rec held fixed]
gives exactly the encoder's, decoder's and discriminator's gradients (KL does not depend on the
decoder). Adam is per coordinate, so one `optim.paper_adam` over the three networks' parameters is
exactly three such optimizers with shared hyperparameters.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from dmr.models.vaegan import VAEGAN
from dmr.train.steps import TrainState

NETWORKS = ("encoder", "decoder", "discriminator")


@functools.partial(jax.jit, static_argnames=("nets", "image_shape"))
def init_variables(nets: VAEGAN, key: jax.Array, image_shape: tuple[int, ...]):
  """(params, batch_stats), each {"encoder": ..., "decoder": ..., "discriminator": ...}; compiled
  as one program (op by op, it compiles ~150 small programs)."""
  x = jnp.zeros((1,) + tuple(image_shape), jnp.float32)
  z = jnp.zeros((1, nets.encoder.latent_dim), jnp.float32)
  keys = jax.random.split(key, 3)
  variables = {"encoder": nets.encoder.init(keys[0], x),
               "decoder": nets.decoder.init(keys[1], z),
               "discriminator": nets.discriminator.init(keys[2], x)}
  return ({name: v["params"] for name, v in variables.items()},
          {name: v["batch_stats"] for name, v in variables.items()})


def init_state(nets: VAEGAN, tx: optax.GradientTransformation, key: jax.Array,
               image_shape: tuple[int, ...]) -> TrainState:
  params, batch_stats = init_variables(nets, key, tuple(image_shape))
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                     opt_state=jax.jit(tx.init)(params))


def kl_to_prior(mu: jax.Array, log_var: jax.Array) -> jax.Array:
  """KL(N(mu, exp(log_var)) || N(0, I)) per row [B] of mu, log_var [B, d]."""
  return -0.5 * jnp.sum(1.0 + log_var - mu**2 - jnp.exp(log_var), axis=-1)


def per_image(values: jax.Array, norm: int) -> jax.Array:
  """L1 (norm=1) or L2 (norm=2) norm of each image [B, ...] -> [B]."""
  flat = values.reshape((values.shape[0], -1))
  return jnp.sum(jnp.abs(flat), axis=1) if norm == 1 else jnp.sqrt(jnp.sum(flat**2, axis=1))


def make_train_step(nets: VAEGAN, tx: optax.GradientTransformation, beta: float, gamma: float):
  """train_step(state, x, y, weight, key) -> (state, metrics), for `loop.run_epochs`.

  x [B, H, W, C], y [B] (unused: a VAE-GAN is trained on one class or on all), weight [B] (0 marks
  padding rows, which the losses and BatchNorm statistics ignore). Metrics are per real image:
  loss (the encoder's), kl, l1, gan (-log sigmoid D(x_rec)), discriminator (its loss / gamma) and
  discriminator_accuracy (real and reconstructed images told apart, in training mode).
  """

  def train_step(state: TrainState, x, y, weight, key):
    del y
    mask = weight > 0
    stats = state.batch_stats

    def apply(name, params, batch_stats, inputs):
      return getattr(nets, name).apply({"params": params, "batch_stats": batch_stats}, inputs,
                                       train=True, mask=mask, mutable=["batch_stats"])

    def losses(params):
      (mu, log_var), enc_stats = apply("encoder", params["encoder"], stats["encoder"], x)
      z = mu + jnp.exp(0.5 * log_var) * jax.random.normal(key, mu.shape, mu.dtype)
      x_rec, dec_stats = apply("decoder", params["decoder"], stats["decoder"], z)
      fooled, _ = apply("discriminator", jax.lax.stop_gradient(params["discriminator"]),
                        stats["discriminator"], x_rec)
      # Two passes in training mode, real then reconstructed, as the paper's code; the running
      # statistics take both in turn.
      real, disc_stats = apply("discriminator", params["discriminator"], stats["discriminator"], x)
      fake, disc_stats = apply("discriminator", params["discriminator"],
                               disc_stats["batch_stats"], jax.lax.stop_gradient(x_rec))
      terms = {"kl": kl_to_prior(mu, log_var), "l1": per_image(x - x_rec, 1),
               "gan": optax.sigmoid_binary_cross_entropy(fooled[:, 0], 1.0),
               "discriminator": (optax.sigmoid_binary_cross_entropy(real[:, 0], 1.0)
                                 + optax.sigmoid_binary_cross_entropy(fake[:, 0], 0.0))}
      sums = {k: jnp.sum(v * weight) for k, v in terms.items()}
      encoder_loss = sums["kl"] + beta * sums["l1"] + gamma * sums["gan"]
      correct = ((real[:, 0] > 0).astype(jnp.float32) + (fake[:, 0] < 0)) / 2
      new_stats = {"encoder": enc_stats["batch_stats"], "decoder": dec_stats["batch_stats"],
                   "discriminator": disc_stats["batch_stats"]}
      return encoder_loss + gamma * sums["discriminator"], (encoder_loss, sums, correct, new_stats)

    grads, (encoder_loss, sums, correct, new_stats) = jax.grad(losses, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    state = TrainState(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                        batch_stats=new_stats, opt_state=opt_state)
    count = jnp.maximum(jnp.sum(weight), 1.0)
    metrics = {"loss": encoder_loss / count, **{k: v / count for k, v in sums.items()},
               "discriminator_accuracy": jnp.sum(correct * weight) / count}
    return state, metrics

  return train_step


class Evaluation(NamedTuple):
  """Per image x: mu, log_var [B, d] of q(z | x); L1 and L2 distances [B] of the reconstruction
  dec(mu) to x; KL [B] to the prior; the discriminator's logits [B] on x and on dec(mu)."""
  mu: jax.Array
  log_var: jax.Array
  l1: jax.Array
  l2: jax.Array
  kl: jax.Array
  real_logit: jax.Array
  reconstruction_logit: jax.Array


@functools.lru_cache(maxsize=None)  # One function per architecture: jit compiles it once.
def make_evaluate(nets: VAEGAN):
  """evaluate(params, batch_stats, x [B, H, W, C]) -> Evaluation, BatchNorm in inference mode."""

  def evaluate(params, batch_stats, x):
    variables = {name: {"params": params[name], "batch_stats": batch_stats[name]}
                 for name in NETWORKS}
    mu, log_var = nets.encoder.apply(variables["encoder"], x)
    x_rec = nets.decoder.apply(variables["decoder"], mu)
    logit = lambda images: nets.discriminator.apply(variables["discriminator"], images)[:, 0]
    return Evaluation(mu, log_var, per_image(x - x_rec, 1), per_image(x - x_rec, 2),
                      kl_to_prior(mu, log_var), logit(x), logit(x_rec))

  return evaluate
