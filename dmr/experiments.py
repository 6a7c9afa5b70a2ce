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

from dmr import (data, distances, manifolds, outcomes, report, results, robustness,
                 tensorboard)
from dmr import config as dmr_config
from dmr.data.dataset import Dataset
from dmr.data.dataset import num_batches
from dmr.train import classifier, loop, optim, steps, variants

EXAMPLES = 8  # Test images per model whose adversarial examples are kept for the report.


def load_dataset(config: ml_collections.ConfigDict) -> Dataset:
  """The dataset named by config.dataset (cached: stages of one run share it)."""
  return data.load_configured(config.dataset, config.data)


def examples_path(workdir: str, variant: str, n: int, seed: int, family: str | None = None) -> str:
  prefix = f"{family}_" if family else ""
  return os.path.join(workdir, "examples", f"{prefix}{variant}_n{n}_seed{seed}.npz")


def training_variant(config: ml_collections.ConfigDict, ds: Dataset, variant: str, n: int,
                     workdir: str, mesh) -> tuple:
  """(second_half, aux) of `variant` for the first n training rows (dmr.train.variants)."""
  a = config.adversarial_training
  kinds = (variants.MANIFOLD_OF[variant],) if variant in variants.MANIFOLD_OF else ()
  return variants.second_half(
      variant, lambda kind: dmr_config.attack_spec(a, a[f"{kind}_eps"]),
      dmr_config.stn_theta_range(config), manifolds.load(config, ds, workdir, mesh, kinds), n)


def train_one_classifier(config: ml_collections.ConfigDict, ds: Dataset, variant: str, n: int,
                         seed: int, workdir: str, mesh, second_half: tuple | None = None,
                         family: str | None = None) -> steps.TrainState:
  """Trains (or resumes, or loads when finished) the classifier (variant, n, seed) of `family`
  (dmr.train.classifier; None: the sweep's); second_half: its (second_half, aux) when already
  built (default: `training_variant`)."""
  config = classifier.family_config(config, family)
  t = config.train
  key = jax.random.key(dmr_config.seed(config, "model_init", seed))
  model, tx, state = classifier.initial_state(config, ds, n, key)
  half, aux = second_half or training_variant(config, ds, variant, n, workdir, mesh)
  train_step = steps.make_train_step(model, tx, half, half=t.batch_size // 2)
  subset = ds.first_n(n)
  model_dir = classifier.model_dir(workdir, variant, n, seed, family)
  return loop.run_epochs(
      train_step, state, subset.x_train, subset.y_train, epochs=classifier.training_epochs(t, n),
      batch_size=t.batch_size, seed=dmr_config.seed(config, "data_order", seed),
      workdir=model_dir, mesh=mesh,
      checkpoint_every_steps=t.checkpoint_every_steps, log_every_steps=t.log_every_steps,
      desc=classifier.model_name(results.model_key(variant, n, seed, family)), aux=aux,
      tensorboard_dir=tensorboard.run_dir(workdir, model_dir),
      learning_rate=optim.paper_schedule(t.learning_rate, t.lr_decay,
                                         num_batches(n, t.batch_size)))


def load_classifier(config: ml_collections.ConfigDict, ds: Dataset, variant: str, n: int,
                    seed: int, workdir: str, mesh,
                    family: str | None = None) -> jax.tree_util.Partial:
  """logits_fn of the finished classifier (variant, n, seed) of `family`, built under its
  family's architecture, BatchNorm in inference mode."""
  return classifier.load_logits_fn(classifier.family_config(config, family), ds, n,
                                   classifier.model_dir(workdir, variant, n, seed, family), mesh)


def state_logits_fn(config: ml_collections.ConfigDict, ds: Dataset,
                    state: steps.TrainState) -> jax.tree_util.Partial:
  return steps.make_logits_fn(classifier.make_model(config, ds.num_classes), state.params,
                              state.batch_stats)


def test_correct(config: ml_collections.ConfigDict, ds: Dataset, state: steps.TrainState,
                 mesh) -> np.ndarray:
  """bool [T]: each test image classified correctly, BatchNorm in inference mode."""
  labels = robustness.predict(state_logits_fn(config, ds, state), ds.x_test,
                              config.train.eval_batch_size, mesh)
  return labels == ds.y_test


def test_error(config: ml_collections.ConfigDict, ds: Dataset, state: steps.TrainState,
               mesh) -> float:
  """Fraction of the test set misclassified, BatchNorm in inference mode."""
  return float(1.0 - np.mean(test_correct(config, ds, state, mesh)))


def outcomes_path(variant: str, n: int, seed: int, family: str | None = None) -> str:
  """The model's outcomes file relative to the workdir (its record's "outcomes")."""
  return os.path.relpath(outcomes.path(classifier.model_dir("", variant, n, seed, family)))


def training_attack_strength(config: ml_collections.ConfigDict, ds: Dataset, state, n: int,
                             seed: int, second_half: tuple) -> dict:
  """The training attack of a finished classifier against its final parameters, on the second
  halves of its first training batches (dmr.train.variants.training_attack_strength)."""
  half, aux = second_half
  subset = ds.first_n(n)
  key = jax.random.key(dmr_config.seed(config, "data_order", seed))
  return variants.training_attack_strength(half, state_logits_fn(config, ds, state),
                                           subset.x_train, subset.y_train, aux, key,
                                           config.train.batch_size)


def classifiers_stage(config: ml_collections.ConfigDict, workdir: str, mesh) -> None:
  """Trains every classifier of dmr.train.classifier.model_keys (the sweep's (variant, n, seed)
  models, then claim 4's own family) and records its test error, its per-image test outcomes,
  for variants with a second half its training attack's strength and, for a family of its own,
  the architecture and epochs it trained with."""
  ds = load_dataset(config)
  for key in classifier.model_keys(config):
    name, family = classifier.model_name(key), key.get("family")
    if "test_error" in (results.find_record(workdir, **key) or {}):
      logging.info("skip %s: finished", name)
      continue
    c = classifier.family_config(config, family)
    half = training_variant(c, ds, key["variant"], key["n"], workdir, mesh)
    state = train_one_classifier(c, ds, workdir=workdir, mesh=mesh, second_half=half, **key)
    correct = test_correct(c, ds, state, mesh)
    fields = {"test_error": float(1.0 - np.mean(correct))}
    if half[0] is not None:
      fields.update(training_attack_strength(c, ds, state, key["n"], key["seed"], half))
    if jax.process_index() == 0:
      directory = classifier.model_dir(workdir, **key)
      outcomes.save(directory, test_correct=correct)
      if half[0] is not None:
        loop.append_metrics(os.path.join(directory, "metrics.jsonl"),
                            {"step": int(state.step), **fields})
      results.update_record(workdir, **key, outcomes=outcomes_path(**key),
                            **classifier.family_fields(config, family), **fields)
    logging.info("%s: test error %.4f%s", name, fields["test_error"],
                 "".join(f", {k} {v:.4g}" for k, v in fields.items() if k != "test_error"))


def manifolds_stage(config: ml_collections.ConfigDict, workdir: str, mesh) -> None:
  """Trains (or resumes; skips when finished) the VAE-GANs of the learned manifold, one per
  class and one class-agnostic, and records their quality (dmr.manifolds.vaegans)."""
  if "learned" in config.manifolds:
    manifolds.train_all(config, load_dataset(config), workdir, mesh)


def test_rows(ds: Dataset, num_test: int) -> np.ndarray:
  return np.arange(min(num_test, len(ds.y_test)))


def on_manifold_spec(config: ml_collections.ConfigDict, kind: str):
  return dmr_config.attack_spec(config.on_manifold_attack, manifolds.attack_eps(config, kind))


def counts(prefix: str, outcome: robustness.Outcome) -> dict:
  """Record fields of one attack: rates (paper, any restart), inputs evaluated and correct,
  successes per restart over the correct inputs, successes re-verified and rejected."""
  r = outcome.rates
  return {f"{prefix}_success": r.success, f"{prefix}_success_any": r.success_any,
          f"{prefix}_evaluated": r.evaluated, f"{prefix}_correct": r.correct,
          f"{prefix}_success_per_restart":
              [int(c) for c in (outcome.success & outcome.correct[:, None]).sum(axis=0)],
          f"{prefix}_verified": outcome.verified, f"{prefix}_rejected": outcome.rejected}


def on_manifold_arrays(kind: str, rows: np.ndarray, on, outcome: robustness.Outcome) -> dict:
  """dmr.outcomes's on_<kind>_* arrays over test rows `rows` [M] from an attack on on.rows."""
  evaluated = np.isin(rows, on.rows)
  where = np.searchsorted(rows, on.rows)
  correct = np.zeros(len(rows), bool)
  correct[where] = outcome.correct
  success = np.zeros((outcome.success.shape[1], len(rows)), bool)
  success[:, where] = outcome.success.T
  return {f"on_{kind}_evaluated": evaluated, f"on_{kind}_correct": correct,
          f"on_{kind}_success": success}


def cross_check_fields(config: ml_collections.ConfigDict, logits_fn, x: np.ndarray,
                       y: np.ndarray, off: robustness.Outcome, key: jax.Array) -> tuple[dict, dict]:
  """(record fields, outcome arrays) of config.attack.cross_check on the images x [A, ...] of
  the regular attack's outcome `off`: the cross-check's success over the correct inputs and the
  combined rates, an input broken when either attack breaks it (robustness.union)."""
  a = config.attack
  cross = robustness.cross_check(logits_fn, x, y, a.cross_check, a.eps, a.norm, key,
                                 a.batch_size)
  combined = robustness.union(off.success, cross)
  rates = robustness.rates(combined, off.correct)
  fields = {"off_manifold_cross_check": list(a.cross_check),
            "off_manifold_cross_check_success": robustness.rates(cross[:, None],
                                                                 off.correct).success_any,
            "off_manifold_combined_success": rates.success,
            "off_manifold_combined_success_any": rates.success_any}
  return fields, {"off_cross_success": cross, "off_combined_success": combined.T}


def attack_one_classifier(config: ml_collections.ConfigDict, ds: Dataset, record: dict,
                          kinds: dict, workdir: str, mesh) -> dict:
  """Off- and on-manifold (every manifold of `kinds`) outcomes of one trained classifier, with
  the cross-check when config.attack.cross_check is set: saves its per-image arrays
  (dmr.outcomes) and returns the fields of its record. The first kind's fields are also
  recorded as on_manifold_*."""
  key = results.record_key(record)
  logits_fn = load_classifier(config, ds, workdir=workdir, mesh=mesh, **key)
  noise = jax.random.key(dmr_config.seed(config, "attacks"))  # The same for every model.
  a, o = config.attack, config.on_manifold_attack
  rows = test_rows(ds, a.num_test)
  x, y = np.asarray(ds.x_test[rows]), ds.y_test[rows]
  off, x_off = robustness.off_manifold_outcome(logits_fn, x, y, dmr_config.attack_spec(a), noise,
                                               a.batch_size, mesh)
  fields = counts("off_manifold", off)
  arrays = {"off_correct": off.correct, "off_success": off.success.T}
  if a.cross_check:
    cross_fields, cross_arrays = cross_check_fields(config, logits_fn, x, y, off, noise)
    fields.update(cross_fields)
    arrays.update(cross_arrays)
  on_rows = test_rows(ds, o.num_test)
  for i, (kind, manifold) in enumerate(kinds.items()):
    outcome, on = robustness.on_manifold_outcome(logits_fn, manifold, ds.y_test, on_rows,
                                                 on_manifold_spec(config, kind), noise,
                                                 o.batch_size, mesh)
    fields.update(counts(f"on_{kind}", outcome))
    arrays.update(on_manifold_arrays(kind, on_rows, on, outcome))
    if i == 0:
      fields.update(counts("on_manifold", outcome))
      first = on
  if jax.process_index() == 0:
    path, shown = examples_path(workdir, **key), first.rows[:EXAMPLES]
    results.savez_atomic(path, x=np.asarray(ds.x_test[shown]), x_off=x_off[shown],
                         x_on=first.x_on[:EXAMPLES], x_on_adv=first.x_adv[:EXAMPLES])
    outcomes.save(classifier.model_dir(workdir, **key), **arrays)
    tensorboard.write_images(workdir, classifier.model_dir(workdir, **key), {
        "attacks/test": ds.x_test[shown], "attacks/off_manifold": x_off[shown],
        "attacks/on_manifold_reconstruction": first.x_on[:EXAMPLES],
        "attacks/on_manifold": first.x_adv[:EXAMPLES]}, step=0)
  fields["outcomes"] = outcomes_path(**key)
  return fields


def success_text(fields: dict) -> str:
  """The success rates of an attacked model's record fields, e.g. "off-manifold 98.2% (any
  restart 99.0%, 412 verified), on learned 12.5% (any restart 14.1%, 57 verified)"."""
  parts = []
  for prefix in sorted(p[:-len("_success")] for p in fields if p.endswith("_success")
                       and p != "on_manifold_success"):  # on_manifold_*: the first kind again.
    extras = [f"any restart {100 * fields[prefix + '_success_any']:.1f}%"
              if prefix + "_success_any" in fields else "",
              f"{fields[prefix + '_verified']} verified" if prefix + "_verified" in fields else ""]
    extras = ", ".join(e for e in extras if e)
    name = prefix.replace("off_manifold", "off-manifold").replace("_", " ")
    parts.append(f"{name} {100 * fields[prefix + '_success']:.1f}%"
                 + (f" ({extras})" if extras else ""))
  return ", ".join(parts)


def attacks_stage(config: ml_collections.ConfigDict, workdir: str, mesh) -> None:
  """Attacks every trained classifier that has no attack outcomes yet, off-manifold and on every
  manifold kind of the run (dmr.manifolds.attack_kinds)."""
  ds = load_dataset(config)
  kinds = manifolds.load(config, ds, workdir, mesh, manifolds.attack_kinds(config.manifolds))
  for record in results.load(workdir)["records"]:
    key = results.record_key(record)
    if ("test_error" not in record or "off_manifold_verified" in record
        or not dmr_config.is_attacked(config, key)):
      continue
    fields = attack_one_classifier(config, ds, record, kinds, workdir, mesh)
    if jax.process_index() == 0:
      results.update_record(workdir, **key, **fields)
    logging.info("%s: %s", classifier.model_name(key), success_text(fields))


def reference_model(workdir: str) -> dict:
  """The model whose adversarial examples claim 1 measures: normal, largest N, first seed, of
  the sweep (never a family of its own)."""
  records = [r for r in results.load(workdir)["records"] if "test_error" in r
             and "family" not in r]
  if not records:
    raise FileNotFoundError(f"no trained classifier in {workdir}: run the classifiers stage.")
  normal = [r for r in records if r["variant"] == "normal"] or records
  key = max(normal, key=lambda r: (r["n"], -r["seed"]))
  return results.model_key(key["variant"], key["n"], key["seed"])


def distances_stage(config: ml_collections.ConfigDict, workdir: str, mesh) -> None:
  """Claim 1 on the reference model: for each manifold of the run, the share of its successful
  regular perturbations (of correctly classified test images) leaving the manifold, beside a
  direction along the manifold and a random direction of the same norm at the same images and
  the on-manifold perturbations (dmr.distances); and the local-subspace residuals and angle.
  Per-image arrays go to workdir/distances/outcomes.npz."""
  if "local" in results.load(workdir)["manifold"]:
    logging.info("skip distances: finished")
    return
  ds, d, a = load_dataset(config), config.distances, config.attack
  ref = reference_model(workdir)
  logits_fn = load_classifier(config, ds, workdir=workdir, mesh=mesh, **ref)
  noise = jax.random.key(dmr_config.seed(config, "attacks"))
  rows = test_rows(ds, d.num_test)
  off, x_off = robustness.off_manifold_outcome(
      logits_fn, np.asarray(ds.x_test[rows]), ds.y_test[rows], dmr_config.attack_spec(a), noise,
      a.batch_size, mesh)
  fooled = off.correct & off.success.any(axis=1)
  rows, x_off = rows[fooled], x_off[fooled]
  x = np.asarray(ds.x_test[rows])
  fields, arrays = {"model": ref, "outcomes": os.path.relpath(outcomes.path("distances"))}, {}
  for kind, manifold in manifolds.load(config, ds, workdir, mesh).items():
    outcome, on = robustness.on_manifold_outcome(
        logits_fn, manifold, ds.y_test, test_rows(ds, d.num_test), on_manifold_spec(config, kind),
        noise, config.on_manifold_attack.batch_size, mesh)
    on_fooled = outcome.correct & outcome.success.any(axis=1)
    project_of = lambda r: lambda images, init: manifold.project(images, r, noise, a.batch_size,
                                                                 mesh, init)
    decode_of = lambda r: lambda codes: manifold.decode(codes, r, a.batch_size, mesh)
    fields[kind], per_image = distances.manifold_distances(
        project_of, decode_of, rows, x, x_off, on.rows[on_fooled], on.x_on[on_fooled], on.x_adv[on_fooled],
        seed=dmr_config.seed(config, "attacks"))
    arrays.update({f"{kind}_{name}": v for name, v in per_image.items()})
  fields["local"] = distances.local_distances(
      ds.x_train, x, x_off, neighbours=d.neighbours, pca_dims=d.pca_dims,
      seed=dmr_config.seed(config, "pca"), batch_size=a.batch_size, mesh=mesh)
  if jax.process_index() == 0:
    outcomes.save(os.path.join(workdir, "distances"), **arrays)
    results.update_manifold(workdir, **fields)
  logging.info("distances: %s", fields)


def report_stage(config: ml_collections.ConfigDict, workdir: str, mesh) -> None:
  """Writes workdir/report/report.md and its figures from results.json."""
  del mesh
  examples = None
  if any("on_manifold_success" in r and "family" not in r
         for r in results.load(workdir)["records"]):  # The examples of claim 1's model.
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
