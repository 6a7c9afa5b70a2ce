"""The paper's stages for one dataset. Each stage skips what results.json says is finished.

Stages are registered in STAGES by name, each called as STAGES[name](config, workdir, mesh): the
config is parsed once there into a dmr.specs.RunSpec, and the library below takes its specs.
"""
from __future__ import annotations

import logging
import os
from typing import Callable

import jax
import ml_collections
import numpy as np

from dmr import (attacking, distances, manifolds, outcomes, records, report, results, robustness,
                 tensorboard)
from dmr.data.dataset import Dataset
from dmr.specs import RunSpec
from dmr.train import classifier, variants


def load_manifolds(run: RunSpec, ds: Dataset, workdir: str, mesh,
                   kinds: tuple[str, ...] | None = None) -> dict:
  """The manifolds `kinds` (default: the run's) of ds, by kind (dmr.manifolds.load)."""
  return manifolds.load(run.manifolds if kinds is None else kinds, ds, workdir, mesh, run.vaegan,
                        run.distances, run.classifier.train.eval_batch_size)


def load_classifier(run: RunSpec, ds: Dataset, key: dict, workdir: str,
                    mesh) -> jax.tree_util.Partial:
  """logits_fn of the finished classifier `key` under its family's architecture."""
  return classifier.load(classifier.model_dir(workdir, **key),
                         run.family(key.get("family")).architecture, ds.num_classes, mesh)


def training_variant(run: RunSpec, ds: Dataset, key: dict, workdir: str, mesh) -> tuple:
  """(second_half, aux) of the model `key`'s variant on its first n training rows."""
  kind = variants.MANIFOLD_OF.get(key["variant"])
  return variants.second_half(key["variant"], run.attacks.training, run.stn_theta_range,
                              load_manifolds(run, ds, workdir, mesh, (kind,) if kind else ()),
                              key["n"])


def train_classifier(run: RunSpec, ds: Dataset, key: dict, workdir: str, mesh) -> tuple:
  """(state, test_correct [T], record fields) of the classifier `key` (results.model_key),
  trained (or resumed, or loaded when finished) under its family's spec with its variant's
  second half (dmr.train.classifier.train and .evaluate)."""
  spec, half = run.family(key.get("family")), training_variant(run, ds, key, workdir, mesh)
  order_seed = run.seed("data_order", key["seed"])
  state = classifier.train(spec, ds, key, workdir, mesh, second_half=half, order_seed=order_seed,
                           init_seed=run.seed("model_init", key["seed"]))
  return (state, *classifier.evaluate(spec, ds, key["n"], state, mesh, second_half=half,
                                      order_seed=order_seed))


def classifiers_stage(run: RunSpec, workdir: str, mesh) -> None:
  """Trains every classifier of run.model_keys (the sweep's (variant, n, seed) models, then
  claim 4's own family) and records its test error, its per-image test outcomes, for variants
  with a second half its training attack's strength and, for a family of its own, the
  architecture and epochs it trained with."""
  ds = run.load_dataset()
  for key in run.model_keys():
    name = classifier.model_name(key)
    if records.is_trained(results.find_record(workdir, **key) or {}):
      logging.info("skip %s: finished", name)
      continue
    state, correct, fields = train_classifier(run, ds, key, workdir, mesh)
    if jax.process_index() == 0:
      classifier.record(workdir, key, int(state.step), correct, fields,
                        run.family_fields(key.get("family")))
    logging.info("%s: test error %.4f%s", name, fields[records.TEST_ERROR],
                 "".join(f", {k} {v:.4g}" for k, v in fields.items() if k != records.TEST_ERROR))


def manifolds_stage(run: RunSpec, workdir: str, mesh) -> None:
  """Trains (or resumes; skips when finished) the VAE-GANs of the learned manifold, one per
  class and one class-agnostic, and records their quality (dmr.manifolds.vaegans)."""
  if "learned" in run.manifolds:
    manifolds.train_all(run.vaegan, run.load_dataset(), workdir, mesh)


def save_attacked(workdir: str, key: dict, ds: Dataset, attacked: attacking.Attacked) -> None:
  """The kept examples, per-image arrays and TensorBoard images of an attacked classifier."""
  directory, examples = classifier.model_dir(workdir, **key), attacking.kept_examples(ds, attacked)
  results.savez_atomic(attacking.examples_path(workdir, **key), **examples)
  outcomes.save(directory, **attacked.arrays)
  tensorboard.write_images(workdir, directory, {
      "attacks/test": examples["x"], "attacks/off_manifold": examples["x_off"],
      "attacks/on_manifold_reconstruction": examples["x_on"],
      "attacks/on_manifold": examples["x_on_adv"]}, step=0)


def attacks_stage(run: RunSpec, workdir: str, mesh) -> None:
  """Attacks every trained classifier that has no attack outcomes yet, off-manifold and on every
  manifold kind of the run (dmr.manifolds.attack_kinds)."""
  ds = run.load_dataset()
  kinds = load_manifolds(run, ds, workdir, mesh, manifolds.attack_kinds(run.manifolds))
  noise = jax.random.key(run.seed("attacks"))  # The same for every model.
  for record in results.load(workdir)["records"]:
    key = results.record_key(record)
    if (not records.is_trained(record) or records.is_attacked(record)
        or not run.is_attacked(key)):
      continue
    logits_fn = load_classifier(run, ds, key, workdir, mesh)
    attacked = attacking.attack_classifier(logits_fn, ds, kinds, run.attacks, noise, mesh)
    fields = {**attacked.outcomes.fields(), "outcomes": classifier.outcomes_path(key)}
    if jax.process_index() == 0:
      save_attacked(workdir, key, ds, attacked)
      results.update_record(workdir, **key, **fields)
    logging.info("%s: %s", classifier.model_name(key), attacked.outcomes.summary())


def reference_model(workdir: str) -> dict:
  """The model whose adversarial examples claim 1 measures: normal, largest N, first seed, of
  the sweep (never a family of its own)."""
  trained = [r for r in results.load(workdir)["records"] if records.is_trained(r)
             and "family" not in r]
  if not trained:
    raise FileNotFoundError(f"no trained classifier in {workdir}: run the classifiers stage.")
  normal = [r for r in trained if r["variant"] == "normal"] or trained
  key = max(normal, key=lambda r: (r["n"], -r["seed"]))
  return results.model_key(key["variant"], key["n"], key["seed"])


def distances_stage(run: RunSpec, workdir: str, mesh) -> None:
  """Claim 1 on the reference model: for each manifold of the run, the share of its successful
  regular perturbations (of correctly classified test images) leaving the manifold, beside a
  direction along the manifold and a random direction of the same norm at the same images and
  the on-manifold perturbations (dmr.distances); and the local-subspace residuals and angle.
  Per-image arrays go to workdir/distances/outcomes.npz."""
  if "local" in results.load(workdir)["manifold"]:
    logging.info("skip distances: finished")
    return
  ds, d, a = run.load_dataset(), run.distances, run.attacks
  ref = reference_model(workdir)
  logits_fn = load_classifier(run, ds, ref, workdir, mesh)
  noise = jax.random.key(run.seed("attacks"))
  rows = attacking.test_rows(ds, d.num_test)
  off, x_off = robustness.off_manifold_outcome(logits_fn, np.asarray(ds.x_test[rows]),
                                               ds.y_test[rows], a.off, noise, a.batch_size, mesh)
  fooled = off.correct & off.success.any(axis=1)
  rows, x_off = rows[fooled], x_off[fooled]
  x = np.asarray(ds.x_test[rows])
  fields, arrays = {"model": ref, "outcomes": os.path.relpath(outcomes.path("distances"))}, {}
  for kind, manifold in load_manifolds(run, ds, workdir, mesh).items():
    outcome, on = robustness.on_manifold_outcome(
        logits_fn, manifold, ds.y_test, attacking.test_rows(ds, d.num_test),
        a.on_manifold(kind), noise, a.on_batch_size, mesh)
    on_fooled = outcome.correct & outcome.success.any(axis=1)
    project_of = lambda r: lambda images, init: manifold.project(images, r, noise, a.batch_size,
                                                                 mesh, init)
    decode_of = lambda r: lambda codes: manifold.decode(codes, r, a.batch_size, mesh)
    fields[kind], per_image = distances.manifold_distances(
        project_of, decode_of, rows, x, x_off, on.rows[on_fooled], on.x_on[on_fooled],
        on.x_adv[on_fooled], seed=run.seed("attacks"))
    arrays.update({f"{kind}_{name}": v for name, v in per_image.items()})
  fields["local"] = distances.local_distances(
      ds.x_train, x, x_off, neighbours=d.neighbours, pca_dims=d.pca_dims, seed=run.seed("pca"),
      batch_size=a.batch_size, mesh=mesh)
  if jax.process_index() == 0:
    outcomes.save(os.path.join(workdir, "distances"), **arrays)
    results.update_manifold(workdir, **fields)
  logging.info("distances: %s", fields)


def report_stage(run: RunSpec, workdir: str, mesh) -> None:
  """Writes workdir/report/report.md and its figures from results.json."""
  del mesh
  examples = None
  if any(records.is_attacked(r) and "family" not in r
         for r in results.load(workdir)["records"]):  # The examples of claim 1's model.
    path = attacking.examples_path(workdir, **reference_model(workdir))
    if os.path.exists(path):
      with np.load(path) as f:
        examples = dict(f)
  if jax.process_index() == 0:
    path = report.write_report(workdir, run.dataset, examples, "true" in run.manifolds)
    print(f"Report: {path}")


def _entry(stage: Callable[[RunSpec, str, object], None]):
  """The stage called with the config: parsed once into its RunSpec."""
  return lambda config, workdir, mesh: stage(RunSpec.from_config(config), workdir, mesh)


STAGES: dict[str, Callable[[ml_collections.ConfigDict, str, object], None]] = {
    name: _entry(stage) for name, stage in (
        ("manifolds", manifolds_stage), ("classifiers", classifiers_stage),
        ("attacks", attacks_stage), ("distances", distances_stage), ("report", report_stage))}
