"""One classifier of a run: its model, its paper optimizer, its initial state and its finished
checkpoint as a pure logits_fn. Each lives in workdir/models/<variant>/n<N>/seed<S>/."""
from __future__ import annotations

import os

import jax
import ml_collections

from dmr import checkpoint, parallel
from dmr.data.dataset import Dataset, num_batches
from dmr.models import classifiers
from dmr.train import optim, steps


def model_dir(workdir: str, variant: str, n: int, seed: int) -> str:
  return os.path.join(workdir, "models", variant, f"n{n}", f"seed{seed}")


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
