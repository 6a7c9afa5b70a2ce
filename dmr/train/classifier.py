"""One classifier of a run: its model, its paper optimizer, its initial state and its finished
checkpoint as a pure logits_fn. Each lives in workdir/models/<variant>/n<N>/seed<S>/, or
workdir/models/<family>/<variant>/n<N>/seed<S>/ for a model family of its own.

Families: the sweep (family None: each of config.variants at its training sizes, under
config.classifier and config.train) and, when config.claim4.architecture is set, "claim4":
normal and off_adv at one N under claim 4's own architecture and epochs (`family_config`).
"""
from __future__ import annotations

import os

import jax
import ml_collections

from dmr import checkpoint, parallel, results
from dmr import config as dmr_config
from dmr.data.dataset import Dataset, num_batches
from dmr.models import classifiers
from dmr.train import optim, steps


CLAIM4 = "claim4"
CLAIM4_VARIANTS = ("normal", "off_adv")


def model_dir(workdir: str, variant: str, n: int, seed: int, family: str | None = None) -> str:
  return os.path.join(workdir, "models", *([family] if family else []), variant, f"n{n}",
                      f"seed{seed}")


def model_name(key: dict) -> str:
  """A model's name in logs and plans: "[family ]variant n=N seed=S"."""
  family = f"{key['family']} " if key.get("family") else ""
  return f"{family}{key['variant']} n={key['n']} seed={key['seed']}"


def claim4_size(config: ml_collections.ConfigDict) -> int:
  """The N of claim 4's own models: claim4.training_size, else the largest training size."""
  return config.claim4.training_size or max(config.training_sizes)


def model_keys(config: ml_collections.ConfigDict) -> list[dict]:
  """results.model_key of every model the classifiers stage trains, in training order: the
  sweep's, then claim 4's own family when claim4.architecture is set."""
  seeds = dmr_config.model_seeds(config)
  keys = [results.model_key(v, n, s) for v in config.variants
          for n in dmr_config.training_sizes_of(config, v) for s in seeds]
  if config.claim4.architecture is not None:
    keys += [results.model_key(v, claim4_size(config), s, CLAIM4) for v in CLAIM4_VARIANTS
             for s in seeds]
  return keys


def family_config(config: ml_collections.ConfigDict,
                  family: str | None) -> ml_collections.ConfigDict:
  """The config the models of `family` train and load under: `config` for the sweep (None), a
  copy with claim 4's architecture and epochs for CLAIM4."""
  if family is None:
    return config
  if family != CLAIM4:
    raise ValueError(f"family={family!r}; known: None (the sweep), {CLAIM4!r}.")
  c = config.copy_and_resolve_references()
  c.classifier.architecture = config.claim4.architecture
  c.train.epochs = config.claim4.epochs or config.train.epochs
  return c


def training_epochs(train: ml_collections.ConfigDict, n: int) -> int:
  """Epochs a classifier trains on N images under `train` (a config.train): train.epochs, raised
  at small N to reach train.min_steps optimizer steps when that is set."""
  if train.min_steps is None:
    return train.epochs
  return max(train.epochs, -(-train.min_steps // num_batches(n, train.batch_size)))


def family_fields(config: ml_collections.ConfigDict, family: str | None) -> dict:
  """Record fields naming how a family's models were trained ({} for the sweep's)."""
  if family is None:
    return {}
  c = family_config(config, family)
  return {"architecture": c.classifier.architecture,
          "epochs": training_epochs(c.train, claim4_size(c))}


def make_model(config: ml_collections.ConfigDict, num_classes: int):
  return classifiers.make_classifier(config.classifier.architecture, num_classes)


def initial_state(config: ml_collections.ConfigDict, ds: Dataset, n: int, key: jax.Array):
  """(model, optimizer, state) of a classifier of n training rows before training; optimizer:
  the paper's Adam (docs/protocol.md#classifier-training), decayed over n / batch_size steps per epoch."""
  t = config.train
  tx = optim.paper_adam(t.learning_rate, t.lr_decay, num_batches(n, t.batch_size), t.b1, t.b2,
                        t.weight_decay)
  model = make_model(config, ds.num_classes)
  return model, tx, steps.init_state(model, tx, key, ds.image_shape)


def load_logits_fn(config: ml_collections.ConfigDict, ds: Dataset, n: int, directory: str,
                   mesh) -> jax.tree_util.Partial:
  """logits_fn of the finished classifier in `directory`, BatchNorm in inference mode."""
  model, _, like = initial_state(config, ds, n, jax.random.key(0))
  ckpt = checkpoint.Checkpointer(os.path.join(directory, "checkpoints"))
  try:
    state = ckpt.restore(parallel.replicate(like, mesh))
  finally:
    ckpt.close()
  if state is None:
    raise FileNotFoundError(f"no classifier checkpoint in {directory}: run the classifiers stage.")
  return steps.make_logits_fn(model, state.params, state.batch_stats)
