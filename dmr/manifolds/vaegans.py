"""The VAE-GANs behind the learned manifold: trained, measured and loaded (docs/protocol.md#vae-gan).

One VAE-GAN per class and one class-agnostic, each on the FULL training set of its class (the
first vaegan.max_train_images rows of it, when set). Each lives in workdir/manifolds/<name>/,
name = the class index ("0", "1", ...) or "all":
  checkpoints/, metrics.jsonl  training (resumable, see dmr.train.loop.run_epochs)
  inference.msgpack            params and batch_stats, written when training ends (dmr.checkpoint)
  latent_box.npz               lo, hi [d]: per-dimension range of the training codes mu
  samples.png                  test images, their reconstructions dec(mu), prior samples dec(z)
  quality.json                 written last: its presence marks the model finished
`load_vaegans` gives them to dmr.manifolds.learned. This module owns a VAE-GAN's life (train,
resume, measure, export, load); dmr.train.vaegan holds its losses and training step.
"""
from __future__ import annotations

import functools
import json
import logging
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dmr import checkpoint, parallel, results, tensorboard
from dmr.data.dataset import Dataset, num_batches
from dmr.models import vaegan as vaegan_models
from dmr.specs import VaeganSpec
from dmr.train import loop, optim, steps
from dmr.train import vaegan as vaegan_training

AGNOSTIC = "all"
QUALITY_FILE = "quality.json"
BOX_FILE = "latent_box.npz"
GRID_FILE = "samples.png"
GRID_COLUMNS = 10
MAX_QUALITY_IMAGES = 10_000  # Test images measured per model (the first of its class).


def latent_box(codes: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(lo [d], hi [d]): the per-dimension range of the training codes [N, d]."""
  return jnp.min(codes, axis=0), jnp.max(codes, axis=0)


def within_prior(codes: jax.Array, limit: float = 2.0) -> jax.Array:
  """bool [N]: every |mu_i| <= limit; the paper attacks only these codes."""
  return jnp.all(jnp.abs(codes) <= limit, axis=-1)


def model_names(num_classes: int) -> list[str]:
  """"0", ..., "K-1" (class-specific) and "all" (class-agnostic)."""
  return [str(k) for k in range(num_classes)] + [AGNOSTIC]


def vaegan_dir(workdir: str, name: str) -> str:
  return os.path.join(workdir, "manifolds", name)


class RowSubset:
  """Rows `index` [n] of an array-like x (numpy, or lazily rendered FONTS), indexed on demand."""

  def __init__(self, x, index: np.ndarray):
    self.x, self.index = x, np.asarray(index)

  def __len__(self) -> int:
    return len(self.index)

  def __getitem__(self, rows):
    return self.x[self.index[rows]]


def class_rows(y: np.ndarray, name: str, limit: int | None = None) -> np.ndarray:
  """Indices of the rows of class `name` in y (all rows for "all"), the first `limit` of them."""
  rows = np.arange(len(y)) if name == AGNOSTIC else np.flatnonzero(y == int(name))
  return rows[:limit]


def make_nets(v: VaeganSpec, image_shape) -> vaegan_models.VAEGAN:
  return vaegan_models.make_vaegan(image_shape, v.latent_dim, v.channels,
                                   v.discriminator_channels)


@functools.lru_cache(maxsize=None)
def _optimizer_and_step(nets, beta, gamma, learning_rate, lr_decay, b1, b2, weight_decay,
                        steps_per_epoch):
  """One (tx, train_step) per setting, so models with equal settings share one compilation."""
  tx = optim.paper_adam(learning_rate, lr_decay, steps_per_epoch, b1, b2, weight_decay)
  return tx, vaegan_training.make_train_step(nets, tx, beta, gamma)


def optimizer_and_step(v: VaeganSpec, nets, name: str, num_examples: int):
  beta = v.beta_agnostic if name == AGNOSTIC else v.beta
  return _optimizer_and_step(nets, beta, v.gamma, v.learning_rate, v.lr_decay, v.b1, v.b2,
                             v.weight_decay, num_batches(num_examples, v.batch_size))


def model_index(name: str, num_classes: int) -> int:
  return num_classes if name == AGNOSTIC else int(name)


def train_vaegan(v: VaeganSpec, ds: Dataset, name: str, workdir: str,
                 mesh) -> steps.TrainState:
  """Trains (or resumes) the VAE-GAN `name` on its training rows, then writes its inference
  export; returns the final state."""
  rows = class_rows(ds.y_train, name, v.max_train_images)
  nets = make_nets(v, ds.image_shape)
  tx, train_step = optimizer_and_step(v, nets, name, len(rows))
  key = jax.random.fold_in(jax.random.key(v.init_seed), model_index(name, ds.num_classes))
  state = vaegan_training.init_state(nets, tx, key, ds.image_shape)
  directory = vaegan_dir(workdir, name)
  state = loop.run_epochs(
      train_step, state, RowSubset(ds.x_train, rows), ds.y_train[rows], epochs=v.epochs,
      batch_size=v.batch_size, seed=v.order_seed, workdir=directory, mesh=mesh,
      checkpoint_every_steps=v.checkpoint_every_steps, log_every_steps=v.log_every_steps,
      desc=f"VAE-GAN {name}", tensorboard_dir=tensorboard.run_dir(workdir, directory),
      learning_rate=optim.paper_schedule(v.learning_rate, v.lr_decay,
                                         num_batches(len(rows), v.batch_size)))
  weights = parallel.to_host((state.params, state.batch_stats))  # On every process.
  if jax.process_index() == 0:
    checkpoint.export(directory, *weights)
  return state


def mean_pair_distance(x: np.ndarray, seed: int = 0) -> float:
  """Mean L2 distance between random pairs of distinct rows of x [N, ...] (N >= 2): each row
  against its successor in a random order."""
  order = np.random.default_rng(seed).permutation(len(x))
  a, b = x[order], x[np.roll(order, -1)]
  return float(np.mean(np.sqrt(np.sum((a - b).reshape(len(x), -1) ** 2, axis=1))))


def summarize(ev: vaegan_training.Evaluation, x: np.ndarray) -> dict:
  """Means over the images x of one evaluation: reconstruction L1 and L2, KL, discriminator
  accuracy (real images > 0, reconstructions < 0), and pair_l2, the mean L2 distance between two
  of the images (what a reconstruction error is small against)."""
  accuracy = np.mean(np.concatenate([ev.real_logit > 0, ev.reconstruction_logit < 0]))
  return {"images": len(x), "l1": float(np.mean(ev.l1)), "l2": float(np.mean(ev.l2)),
          "kl": float(np.mean(ev.kl)), "discriminator_accuracy": float(accuracy),
          "pair_l2": mean_pair_distance(x)}


def measure_quality(v: VaeganSpec, ds: Dataset, name: str, state: steps.TrainState,
                    train_codes: np.ndarray, mesh) -> dict:
  """Quality of VAE-GAN `name` on (up to MAX_QUALITY_IMAGES of) its test images (see
  `summarize`), per class for the class-agnostic one; plus the fraction of training codes with
  every |mu_i| <= 2 (the codes the on-manifold attack keeps)."""
  nets = make_nets(v, ds.image_shape)
  rows = class_rows(ds.y_test, name, MAX_QUALITY_IMAGES)
  x = np.asarray(ds.x_test[rows])
  evaluate = jax.tree_util.Partial(vaegan_training.make_evaluate(nets), state.params,
                                   state.batch_stats)
  ev = parallel.map_in_batches(evaluate, (x,), v.eval_batch_size, mesh)
  quality = summarize(ev, x)
  quality["train_codes_within_2"] = float(np.mean(within_prior(train_codes)))
  if name == AGNOSTIC:
    labels = ds.y_test[rows]
    quality["per_class"] = {
        str(k): summarize(jax.tree.map(lambda a: a[labels == k], ev), x[labels == k])
        for k in range(ds.num_classes)}
  return quality


def save_grid(path: str, rows: list[np.ndarray], labels: list[str]) -> None:
  """A png of image rows (each [n, H, W, C] in [0, 1]) with a label left of each row."""
  from matplotlib.figure import Figure  # No pyplot: library code selects no backend.

  height, width, channels = rows[0].shape[1:]
  cols = max(len(r) for r in rows)
  fig = Figure(figsize=(cols * width / 28, len(rows) * height / 28 + 0.2))
  axes = fig.subplots(len(rows), 1)
  for ax, images, label in zip(np.atleast_1d(axes), rows, labels):
    strip = np.concatenate(list(images), axis=1)
    ax.imshow(strip[..., 0] if channels == 1 else strip, cmap="gray", vmin=0.0, vmax=1.0)
    ax.set_ylabel(label, rotation=0, ha="right", va="center")
    ax.set_xticks([])
    ax.set_yticks([])
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def trained_vaegan(nets: vaegan_models.VAEGAN, params: dict, batch_stats: dict,
                   box=None) -> "TrainedVAEGAN":
  """The inference-mode VAE-GAN of trained weights (params, batch_stats keyed by network)."""
  variables = {n: {"params": params[n], "batch_stats": batch_stats[n]}
               for n in ("encoder", "decoder")}
  return TrainedVAEGAN(nets, variables, box)


def sample_grid(v: VaeganSpec, ds: Dataset, name: str, vae: "TrainedVAEGAN",
                mesh) -> list[np.ndarray]:
  """[test images, reconstructions dec(mu), prior samples dec(z ~ N(0, I))], GRID_COLUMNS each."""
  x = np.asarray(ds.x_test[class_rows(ds.y_test, name)[:GRID_COLUMNS]])
  key = jax.random.fold_in(jax.random.key(v.init_seed), model_index(name, ds.num_classes))
  z = np.asarray(jax.random.normal(key, (GRID_COLUMNS, v.latent_dim)))
  apply = lambda fn, a: parallel.map_in_batches(fn, (a,), GRID_COLUMNS, mesh)
  return [x, apply(vae.decode_fn, apply(vae.encode_fn, x)), apply(vae.decode_fn, z)]


def train_and_measure(v: VaeganSpec, ds: Dataset, name: str, workdir: str, mesh) -> dict:
  """Trains (or resumes) VAE-GAN `name`, then writes its latent box, grid and quality."""
  state = train_vaegan(v, ds, name, workdir, mesh)
  vae = trained_vaegan(make_nets(v, ds.image_shape), state.params, state.batch_stats)
  rows = class_rows(ds.y_train, name, v.max_train_images)
  codes = parallel.map_in_batches(vae.encode_fn, (RowSubset(ds.x_train, rows),),
                                  v.eval_batch_size, mesh)
  quality = measure_quality(v, ds, name, state, codes, mesh)
  grid = sample_grid(v, ds, name, vae, mesh)  # On every process: the batches are sharded.
  if jax.process_index() == 0:
    directory = vaegan_dir(workdir, name)
    lo, hi = latent_box(codes)
    results.savez_atomic(os.path.join(directory, BOX_FILE), lo=np.asarray(lo), hi=np.asarray(hi))
    save_grid(os.path.join(directory, GRID_FILE), grid, ["test", "reconstruction", "prior sample"])
    tensorboard.write_images(workdir, directory, {
        "vaegan/test": grid[0], "vaegan/reconstruction": grid[1], "vaegan/prior_sample": grid[2]},
        int(state.step))
    results.write_json_atomic(os.path.join(directory, QUALITY_FILE), quality)
  return quality


def read_quality(workdir: str, name: str) -> dict | None:
  """quality.json of VAE-GAN `name`, None while the model is unfinished."""
  try:
    with open(os.path.join(vaegan_dir(workdir, name), QUALITY_FILE)) as f:
      return json.load(f)
  except FileNotFoundError:
    return None


def train_all(v: VaeganSpec, ds: Dataset, workdir: str, mesh) -> dict:
  """Trains or resumes every VAE-GAN of ds, skipping finished ones; records their quality in
  results.json under manifold.vaegan_quality[name]. Returns that dict."""
  qualities = {}
  for name in model_names(ds.num_classes):
    quality = read_quality(workdir, name)
    if quality is not None:
      logging.info("skip VAE-GAN %s: finished (test L2 %.3f)", name, quality["l2"])
    else:
      quality = train_and_measure(v, ds, name, workdir, mesh)
      logging.info("VAE-GAN %s: test L1 %.2f, L2 %.3f (pairs of test images: %.3f), KL %.2f, "
                   "discriminator accuracy %.3f", name, quality["l1"], quality["l2"],
                   quality["pair_l2"], quality["kl"], quality["discriminator_accuracy"])
    qualities[name] = quality
  if jax.process_index() == 0:
    results.update_manifold(workdir, vaegan_quality=qualities)
  return qualities


class TrainedVAEGAN(NamedTuple):
  """One trained VAE-GAN in inference mode (BatchNorm running statistics): its networks, the
  variables {"encoder": ..., "decoder": ...} and box (lo [d], hi [d]), the per-dimension range of
  the training codes mu (None until measured). encode_fn: images [B, H, W, C] -> mu [B, d];
  decode_fn: codes [B, d] -> images; both jax.tree_util.Partial: pass them to jitted functions
  as arguments, and one compilation serves every class."""
  nets: vaegan_models.VAEGAN
  variables: dict
  box: tuple[jax.Array, jax.Array] | None

  @property
  def encode_fn(self) -> jax.tree_util.Partial:
    return vaegan_models.make_encode_fn(self.nets.encoder, self.variables["encoder"])

  @property
  def decode_fn(self) -> jax.tree_util.Partial:
    return vaegan_models.make_decode_fn(self.nets.decoder, self.variables["decoder"])


class VAEGANs(NamedTuple):
  """classes[k]: the VAE-GAN of class k; agnostic: the class-agnostic one."""
  classes: tuple[TrainedVAEGAN, ...]
  agnostic: TrainedVAEGAN


def load_vaegan(v: VaeganSpec, workdir: str, ds: Dataset, name: str,
                mesh=None) -> TrainedVAEGAN:
  """The finished VAE-GAN `name` ("0", ..., or "all"), its weights (dmr.checkpoint.load_weights)
  replicated over `mesh` (default: all devices)."""
  directory = vaegan_dir(workdir, name)
  if read_quality(workdir, name) is None:
    raise FileNotFoundError(
        f"The VAE-GAN {name!r} in {directory} is not trained yet: run the manifolds stage first "
        f"(--config.stages='(\"manifolds\", ...)') with the same --workdir.")
  params, batch_stats = parallel.replicate(checkpoint.load_weights(directory),
                                           mesh or parallel.data_mesh())
  with np.load(os.path.join(directory, BOX_FILE)) as box:
    bounds = (jnp.asarray(box["lo"]), jnp.asarray(box["hi"]))
  return trained_vaegan(make_nets(v, ds.image_shape), params, batch_stats, bounds)


def load_vaegans(v: VaeganSpec, workdir: str, ds: Dataset, mesh=None) -> VAEGANs:
  """Every finished VAE-GAN of ds (see `load_vaegan`)."""
  return VAEGANs(
      classes=tuple(load_vaegan(v, workdir, ds, str(k), mesh) for k in range(ds.num_classes)),
      agnostic=load_vaegan(v, workdir, ds, AGNOSTIC, mesh))
