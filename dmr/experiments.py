"""The paper's stages for one dataset. Each stage skips what results.json says is finished.

Stages are registered in STAGES by name; `run(config, workdir)` runs config.stages in order.
"""
from __future__ import annotations

import logging
import os
from typing import Callable

import jax
import ml_collections
import numpy as np

from dmr import data, distances, manifolds, parallel, report, results, robustness
from dmr import config as dmr_config
from dmr.data.dataset import Dataset
from dmr.train import classifier, loop, steps, variants

EXAMPLES = 8  # Test images per model whose adversarial examples are kept for the report.


def load_dataset(config: ml_collections.ConfigDict) -> Dataset:
  """The dataset named by config.dataset (cached: stages of one run share it)."""
  return data.load_configured(config.dataset, config.data)


def examples_path(workdir: str, variant: str, n: int, seed: int) -> str:
  return os.path.join(workdir, "examples", f"{variant}_n{n}_seed{seed}.npz")


def train_one_classifier(config: ml_collections.ConfigDict, ds: Dataset, variant: str, n: int,
                         seed: int, workdir: str, mesh) -> steps.TrainState:
  """Trains (or resumes, or loads when finished) the classifier (variant, n, seed)."""
  t, a = config.train, config.adversarial_training
  key = jax.random.key(dmr_config.seed(config, "model_init", seed))
  model, tx, state = classifier.initial_state(config, ds, n, key)
  kinds = (variants.MANIFOLD_OF[variant],) if variant in variants.MANIFOLD_OF else ()
  second_half, aux = variants.second_half(
      variant, lambda kind: dmr_config.attack_spec(a, a[f"{kind}_eps"]),
      dmr_config.stn_theta_range(config), manifolds.load(config, ds, workdir, mesh, kinds), n)
  train_step = steps.make_train_step(model, tx, second_half, half=t.batch_size // 2)
  subset = ds.first_n(n)
  return loop.run_epochs(
      train_step, state, subset.x_train, subset.y_train, epochs=t.epochs,
      batch_size=t.batch_size, seed=dmr_config.seed(config, "data_order", seed),
      workdir=classifier.model_dir(workdir, variant, n, seed), mesh=mesh,
      checkpoint_every_steps=t.checkpoint_every_steps, log_every_steps=t.log_every_steps,
      desc=f"{variant} n={n} seed={seed}", aux=aux)


def load_classifier(config: ml_collections.ConfigDict, ds: Dataset, variant: str, n: int,
                    seed: int, workdir: str, mesh) -> jax.tree_util.Partial:
  """logits_fn of the finished classifier (variant, n, seed), BatchNorm in inference mode."""
  return classifier.load_logits_fn(config, ds, n, classifier.model_dir(workdir, variant, n, seed),
                                   mesh)


def test_error(config: ml_collections.ConfigDict, ds: Dataset, state: steps.TrainState,
               mesh) -> float:
  """Fraction of the test set misclassified, BatchNorm in inference mode."""
  logits_fn = steps.make_logits_fn(classifier.make_model(config, ds.num_classes), state.params,
                                   state.batch_stats)
  labels = robustness.predict(logits_fn, ds.x_test, config.train.eval_batch_size, mesh)
  return float(np.mean(labels != ds.y_test))


def classifiers_stage(config: ml_collections.ConfigDict, workdir: str, mesh) -> None:
  """Trains every (variant, n, seed) classifier and records its test error."""
  ds = load_dataset(config)
  for variant in config.variants:
    for n in config.training_sizes:
      for seed in dmr_config.model_seeds(config):
        if "test_error" in (results.find_record(workdir, variant, n, seed) or {}):
          logging.info("skip %s n=%d seed=%d: finished", variant, n, seed)
          continue
        error = test_error(config, ds, train_one_classifier(config, ds, variant, n, seed,
                                                            workdir, mesh), mesh)
        if jax.process_index() == 0:
          results.update_record(workdir, variant, n, seed, test_error=error)
        logging.info("%s n=%d seed=%d: test error %.4f", variant, n, seed, error)


def manifolds_stage(config: ml_collections.ConfigDict, workdir: str, mesh) -> None:
  """Trains (or resumes; skips when finished) the VAE-GANs of the learned manifold, one per
  class and one class-agnostic, and records their quality (dmr.manifolds.vaegans)."""
  manifolds.train_all(config, load_dataset(config), workdir, mesh)


def test_rows(ds: Dataset, num_test: int) -> np.ndarray:
  return np.arange(min(num_test, len(ds.y_test)))


def attack_one_classifier(config: ml_collections.ConfigDict, ds: Dataset, record: dict,
                          manifold: manifolds.Manifold, workdir: str, mesh) -> dict:
  """Off- and on-manifold success rates of one trained classifier (fields of its record)."""
  key = results.model_key(record["variant"], record["n"], record["seed"])
  logits_fn = load_classifier(config, ds, workdir=workdir, mesh=mesh, **key)
  noise = jax.random.key(dmr_config.seed(config, "attacks"))  # The same for every model.
  a, o = config.attack, config.on_manifold_attack
  rows = test_rows(ds, a.num_test)
  off, x_off = robustness.off_manifold(logits_fn, np.asarray(ds.x_test[rows]), ds.y_test[rows],
                                       dmr_config.attack_spec(a), noise, a.batch_size, mesh)
  on_rates, on = robustness.on_manifold(logits_fn, manifold, ds.y_test, test_rows(ds, o.num_test),
                                        dmr_config.attack_spec(o), noise, o.batch_size, mesh)
  if jax.process_index() == 0:
    path, shown = examples_path(workdir, **key), on.rows[:EXAMPLES]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez(path, x=np.asarray(ds.x_test[shown]), x_off=x_off[shown],
             x_on=on.x_on[:EXAMPLES], x_on_adv=on.x_adv[:EXAMPLES])
  return {"off_manifold_success": off.success, "off_manifold_success_any": off.success_any,
          "off_manifold_correct": off.correct, "on_manifold_success": on_rates.success,
          "on_manifold_success_any": on_rates.success_any,
          "on_manifold_evaluated": on_rates.evaluated, "on_manifold_correct": on_rates.correct}


def attacks_stage(config: ml_collections.ConfigDict, workdir: str, mesh) -> None:
  """Attacks every trained classifier that has no success rates yet, on the run's first
  manifold (config.manifolds[0])."""
  ds = load_dataset(config)
  (manifold,) = manifolds.load(config, ds, workdir, mesh, config.manifolds[:1]).values()
  for record in results.load(workdir)["records"]:
    if "test_error" not in record or "on_manifold_success" in record:
      continue
    fields = attack_one_classifier(config, ds, record, manifold, workdir, mesh)
    if jax.process_index() == 0:
      results.update_record(workdir, record["variant"], record["n"], record["seed"], **fields)
    logging.info("%s n=%d seed=%d: %s", record["variant"], record["n"], record["seed"], fields)


def reference_model(workdir: str) -> dict:
  """The model whose adversarial examples claim 1 measures: normal, largest N, first seed."""
  records = [r for r in results.load(workdir)["records"] if "test_error" in r]
  if not records:
    raise FileNotFoundError(f"no trained classifier in {workdir}: run the classifiers stage.")
  normal = [r for r in records if r["variant"] == "normal"] or records
  key = max(normal, key=lambda r: (r["n"], -r["seed"]))
  return results.model_key(key["variant"], key["n"], key["seed"])


def distances_stage(config: ml_collections.ConfigDict, workdir: str, mesh) -> None:
  """Claim 1: distances of test images and of their off- and on-manifold adversarial examples
  to each manifold of the run, and the local-subspace residuals and angle of the perturbations
  (dmr.distances)."""
  if "local" in results.load(workdir)["manifold"]:
    logging.info("skip distances: finished")
    return
  ds, d, a, o = load_dataset(config), config.distances, config.attack, config.on_manifold_attack
  ref = reference_model(workdir)
  logits_fn = load_classifier(config, ds, workdir=workdir, mesh=mesh, **ref)
  noise = jax.random.key(dmr_config.seed(config, "attacks"))
  rows = test_rows(ds, d.num_test)
  x, y = np.asarray(ds.x_test[rows]), ds.y_test[rows]
  _, x_off = robustness.off_manifold(logits_fn, x, y, dmr_config.attack_spec(a), noise,
                                     a.batch_size, mesh)
  fields = {"model": ref}
  for kind, manifold in manifolds.load(config, ds, workdir, mesh).items():
    on = manifold.attack(logits_fn, rows, dmr_config.attack_spec(o), noise, o.batch_size, mesh)
    distance_fn = lambda images, r: manifold.distance(images, r, noise, a.batch_size, mesh)
    fields[kind] = distances.manifold_distances(distance_fn, rows, x, x_off, on)
  fields["local"] = distances.local_distances(
      ds.x_train, x, x_off, neighbours=d.neighbours, pca_dims=d.pca_dims,
      seed=dmr_config.seed(config, "pca"), batch_size=a.batch_size, mesh=mesh)
  if jax.process_index() == 0:
    results.update_manifold(workdir, **fields)
  logging.info("distances: %s", fields)


def report_stage(config: ml_collections.ConfigDict, workdir: str, mesh) -> None:
  """Writes workdir/report/report.md and its figures from results.json."""
  del mesh
  examples = None
  if any("on_manifold_success" in r for r in results.load(workdir)["records"]):
    path = examples_path(workdir, **reference_model(workdir))
    if os.path.exists(path):
      with np.load(path) as f:
        examples = dict(f)
  if jax.process_index() == 0:
    path = report.write_report(workdir, config.dataset, examples, "true" in config.manifolds)
    print(f"Report: {path}")


STAGES: dict[str, Callable[[ml_collections.ConfigDict, str, object], None]] = {
    "manifolds": manifolds_stage,
    "classifiers": classifiers_stage,
    "attacks": attacks_stage,
    "distances": distances_stage,
    "report": report_stage,
}


def run(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Runs config.stages in order on a data mesh over all devices."""
  mesh = parallel.data_mesh()
  for stage in config.stages:
    logging.info("stage %s", stage)
    STAGES[stage](config, workdir, mesh)
