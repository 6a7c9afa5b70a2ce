"""One classifier's life: its model and paper optimizer, its training (resumable), its evaluation
and record, its inference export and loading it back as a pure logits_fn. Each classifier lives
in workdir/models/<variant>/n<N>/seed<S>/, or workdir/models/<family>/<variant>/n<N>/seed<S>/ for
a model family of its own (dmr.specs.CLAIM4):
  checkpoints/, metrics.jsonl  training (resumable, see dmr.train.loop.run_epochs)
  inference.msgpack            params and batch_stats, written when training ends (dmr.checkpoint)
  outcomes.npz                 its per-image outcomes (dmr.outcomes)
"""
from __future__ import annotations

import os

import jax
import numpy as np

from dmr import checkpoint, outcomes, parallel, records, results, robustness, tensorboard
from dmr.data.dataset import Dataset
from dmr.models import classifiers
from dmr.specs import ClassifierSpec
from dmr.train import loop, optim, steps, variants


def model_dir(workdir: str, variant: str, n: int, seed: int, family: str | None = None) -> str:
  return os.path.join(workdir, "models", *([family] if family else []), variant, f"n{n}",
                      f"seed{seed}")


def model_name(key: dict) -> str:
  """A model's name in logs and plans: "[family ]variant n=N seed=S"."""
  family = f"{key['family']} " if key.get("family") else ""
  return f"{family}{key['variant']} n={key['n']} seed={key['seed']}"


def outcomes_path(key: dict) -> str:
  """The model's outcomes file relative to the workdir (its record's "outcomes")."""
  return os.path.relpath(outcomes.path(model_dir("", **key)))


def make_model(architecture: str, num_classes: int):
  return classifiers.make_classifier(architecture, num_classes)


def initial_state(spec: ClassifierSpec, ds: Dataset, n: int, key: jax.Array):
  """(model, optimizer, state) of a classifier of n training rows before training; optimizer:
  the paper's Adam (docs/protocol.md#classifier-training), decayed over n / batch_size steps per
  epoch."""
  t = spec.train
  tx = optim.paper_adam(t.learning_rate, t.lr_decay, t.steps_per_epoch(n), t.b1, t.b2,
                        t.weight_decay)
  model = make_model(spec.architecture, ds.num_classes)
  return model, tx, steps.init_state(model, tx, key, ds.image_shape)


def train(spec: ClassifierSpec, ds: Dataset, key: dict, workdir: str, mesh, *, init_seed: int,
          order_seed: int, second_half: tuple = (None, None)) -> steps.TrainState:
  """Trains (or resumes, or loads when finished) the classifier `key` (results.model_key) on the
  first key["n"] training rows, the second half of each batch from second_half (its
  (second_half, aux), dmr.train.variants); then writes its inference export."""
  t, n, directory = spec.train, key["n"], model_dir(workdir, **key)
  model, tx, state = initial_state(spec, ds, n, jax.random.key(init_seed))
  half, aux = second_half
  train_step = steps.make_train_step(model, tx, half, half=t.batch_size // 2)
  subset = ds.first_n(n)
  state = loop.run_epochs(
      train_step, state, subset.x_train, subset.y_train, epochs=t.epochs_at(n),
      batch_size=t.batch_size, seed=order_seed, workdir=directory, mesh=mesh,
      checkpoint_every_steps=t.checkpoint_every_steps, log_every_steps=t.log_every_steps,
      desc=model_name(key), aux=aux, tensorboard_dir=tensorboard.run_dir(workdir, directory),
      learning_rate=optim.paper_schedule(t.learning_rate, t.lr_decay, t.steps_per_epoch(n)))
  weights = parallel.to_host((state.params, state.batch_stats))  # On every process.
  if jax.process_index() == 0:
    checkpoint.export(directory, *weights)
  return state


def state_logits_fn(spec: ClassifierSpec, num_classes: int,
                    state: steps.TrainState) -> jax.tree_util.Partial:
  return steps.make_logits_fn(make_model(spec.architecture, num_classes), state.params,
                              state.batch_stats)


def evaluate(spec: ClassifierSpec, ds: Dataset, n: int, state: steps.TrainState, mesh, *,
             order_seed: int, second_half: tuple = (None, None)) -> tuple[np.ndarray, dict]:
  """(test_correct [T], record fields) of a trained classifier: its test error, BatchNorm in
  inference mode, and with a second half its training attack's strength against its final
  parameters on the second halves of its first training batches
  (dmr.train.variants.training_attack_strength)."""
  logits_fn = state_logits_fn(spec, ds.num_classes, state)
  correct = robustness.predict(logits_fn, ds.x_test, spec.train.eval_batch_size, mesh) == ds.y_test
  fields = {records.TEST_ERROR: float(1.0 - np.mean(correct))}
  half, aux = second_half
  if half is not None:
    subset = ds.first_n(n)
    fields.update(variants.training_attack_strength(
        half, logits_fn, subset.x_train, subset.y_train, aux, jax.random.key(order_seed),
        spec.train.batch_size))
  return correct, fields


def record(workdir: str, key: dict, step: int, correct: np.ndarray, fields: dict,
           extra: dict) -> None:
  """Saves the test outcomes of classifier `key`, logs the training attack's strength (fields
  beyond test_error) in its metrics.jsonl, and records fields and `extra` in results.json."""
  directory = model_dir(workdir, **key)
  outcomes.save(directory, test_correct=correct)
  if len(fields) > 1:
    loop.append_metrics(os.path.join(directory, "metrics.jsonl"), {"step": step, **fields})
  results.update_record(workdir, **key, outcomes=outcomes_path(key), **extra, **fields)


def load(directory: str, architecture: str, num_classes: int, mesh) -> jax.tree_util.Partial:
  """logits_fn of the finished classifier in `directory`, BatchNorm in inference mode, its
  weights (dmr.checkpoint.load_weights) replicated over `mesh`."""
  weights = checkpoint.load_weights(directory)
  if weights is None:
    raise FileNotFoundError(f"no trained classifier in {directory}: run the classifiers stage.")
  params, batch_stats = parallel.replicate(weights, mesh)
  return steps.make_logits_fn(make_model(architecture, num_classes), params, batch_stats)
