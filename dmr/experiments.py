"""The paper's stages for one dataset. Each stage skips what results.json says is finished.

Stages are registered in STAGES by name; `run(config, workdir)` runs config.stages in order.
"""
from __future__ import annotations

import functools
import logging
import os
from typing import Callable

import jax
import ml_collections
import numpy as np

from dmr import data, parallel, results
from dmr.data.dataset import Dataset, num_batches
from dmr.models import classifiers
from dmr.train import loop, optim, steps


@functools.lru_cache(maxsize=1)
def _cached_dataset(name: str, directory: str | None) -> Dataset:
  return data.load(name, directory)


def load_dataset(config: ml_collections.ConfigDict) -> Dataset:
  """The dataset named by config.dataset (cached: stages of one run share it)."""
  return _cached_dataset(config.dataset, config.data.dir)


def model_dir(workdir: str, variant: str, n: int, seed: int) -> str:
  return os.path.join(workdir, "models", variant, f"n{n}", f"seed{seed}")


def model_seeds(config: ml_collections.ConfigDict) -> list[int]:
  return [config.seed + i for i in range(config.models_per_size)]


def make_model(config: ml_collections.ConfigDict, num_classes: int):
  return classifiers.make_classifier(config.classifier.architecture, num_classes)


def train_one_classifier(config: ml_collections.ConfigDict, ds: Dataset, variant: str, n: int,
                         seed: int, workdir: str, mesh) -> steps.TrainState:
  """Trains (or resumes, or loads when finished) the classifier (variant, n, seed)."""
  subset = ds.first_n(n)
  t = config.train
  model = make_model(config, ds.num_classes)
  tx = optim.paper_adam(t.learning_rate, t.lr_decay, num_batches(n, t.batch_size), t.b1, t.b2,
                        t.weight_decay)
  state = steps.init_state(model, tx, jax.random.key(seed), ds.image_shape)
  train_step = steps.make_train_step(model, tx)
  return loop.run_epochs(
      train_step, state, subset.x_train, subset.y_train, epochs=t.epochs,
      batch_size=t.batch_size, seed=seed, workdir=model_dir(workdir, variant, n, seed), mesh=mesh,
      checkpoint_every_steps=t.checkpoint_every_steps, log_every_steps=t.log_every_steps,
      desc=f"{variant} n={n} seed={seed}")


def test_error(config: ml_collections.ConfigDict, ds: Dataset, state: steps.TrainState,
               mesh) -> float:
  """Fraction of the test set misclassified, BatchNorm in inference mode."""
  predict = steps.make_predict_step(make_model(config, ds.num_classes))
  labels = loop.predict_labels(predict, state.params, state.batch_stats, ds.x_test,
                               config.train.eval_batch_size, mesh)
  return float(np.mean(labels != ds.y_test))


def classifiers_stage(config: ml_collections.ConfigDict, workdir: str, mesh) -> None:
  """Trains every (variant, n, seed) classifier and records its test error."""
  ds = load_dataset(config)
  for variant in config.variants:
    for n in config.training_sizes:
      for seed in model_seeds(config):
        record = results.find_record(workdir, variant, n, seed)
        if record and "test_error" in record:
          logging.info("skip %s n=%d seed=%d: finished (test error %.4f)", variant, n, seed,
                       record["test_error"])
          continue
        state = train_one_classifier(config, ds, variant, n, seed, workdir, mesh)
        error = test_error(config, ds, state, mesh)
        if jax.process_index() == 0:
          results.update_record(workdir, variant, n, seed, test_error=error)
        logging.info("%s n=%d seed=%d: test error %.4f", variant, n, seed, error)


STAGES: dict[str, Callable[[ml_collections.ConfigDict, str, object], None]] = {
    "classifiers": classifiers_stage,
}


def run(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Runs config.stages in order on a data mesh over all devices."""
  mesh = parallel.data_mesh()
  for stage in config.stages:
    logging.info("stage %s", stage)
    STAGES[stage](config, workdir, mesh)
