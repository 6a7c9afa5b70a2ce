"""The paper's stages for one dataset. Each stage skips what results.json says is finished.

Stages are registered in STAGES by name; `run(config, workdir)` runs config.stages in order.
"""
from __future__ import annotations

import functools
import json
import logging
import os
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dmr import checkpoint, data, geometry, learned_manifold, parallel, report, results, robustness
from dmr import config as dmr_config
from dmr import manifold as manifold_lib
from dmr.data.dataset import Dataset, num_batches
from dmr.models import classifiers
from dmr.fonts_manifold import project_to_true_manifold
from dmr.train import loop, optim, steps, variants


@functools.lru_cache(maxsize=1)
def _cached_dataset(name: str, data_config: str) -> Dataset:
  d = ml_collections.ConfigDict(json.loads(data_config))
  if name == "fonts":
    from dmr.data import fonts
    return fonts.load_fonts(d.num_train, d.num_test, seed=d.seed, difficulty=d.difficulty,
                            max_fonts=d.max_fonts)
  return data.load(name, d.dir)


def load_dataset(config: ml_collections.ConfigDict) -> Dataset:
  """The dataset named by config.dataset (cached: stages of one run share it)."""
  return _cached_dataset(config.dataset, config.data.to_json())


def model_dir(workdir: str, variant: str, n: int, seed: int) -> str:
  return os.path.join(workdir, "models", variant, f"n{n}", f"seed{seed}")


def model_seeds(config: ml_collections.ConfigDict) -> list[int]:
  return [config.seed + i for i in range(config.models_per_size)]


def make_model(config: ml_collections.ConfigDict, num_classes: int):
  return classifiers.make_classifier(config.classifier.architecture, num_classes)


def model_and_optimizer(config: ml_collections.ConfigDict, ds: Dataset, n: int):
  """The classifier and the paper's optimizer for a training set of n examples."""
  t = config.train
  tx = optim.paper_adam(t.learning_rate, t.lr_decay, num_batches(n, t.batch_size), t.b1, t.b2,
                        t.weight_decay)
  return make_model(config, ds.num_classes), tx


def theta_range(config: ml_collections.ConfigDict) -> geometry.ThetaRange:
  """The transformation range of the stn variants: the data's on FONTS, else PAPER.md's."""
  if config.dataset == "fonts":
    return geometry.FONTS_RANGES[config.data.difficulty]
  return geometry.AUGMENTATION


def training_variant(config: ml_collections.ConfigDict, ds: Dataset, variant: str, n: int,
                     model, workdir: str, mesh):
  """(second_half, aux) of `variant` (see dmr.train.variants) for the first n training rows."""
  a = config.adversarial_training
  if variant == "normal":
    return None, None
  if variant == "off_adv":
    return variants.off_manifold(model, a), None
  if variant == "stn_augm":
    return variants.stn_augmentation(theta_range(config)), None
  if variant == "stn_adv":
    return variants.stn_adversarial(model, a, theta_range(config)), None
  if variant == "on_adv_true":
    x = ds.x_train
    return variants.on_manifold_true(model, a, x.prototypes_at(np.arange(n)), x.theta[:n],
                                     x.theta_range), np.arange(n)
  if variant == "on_adv_learned":
    vaes = learned_manifold.load_vaegans(config, workdir, ds, mesh)
    decoders = [v.decode_fn for v in vaes.classes]
    stacked = jax.tree.map(lambda *v: jnp.stack(v), *[d.args[0] for d in decoders])
    lo = jnp.stack([v.box[0] for v in vaes.classes])
    hi = jnp.stack([v.box[1] for v in vaes.classes])
    y = ds.y_train[:n]
    mu = np.zeros((n, lo.shape[1]), np.float32)
    for k in range(ds.num_classes):
      rows = np.flatnonzero(y == k)
      mu[rows] = learned_manifold.apply_in_batches(vaes.classes[k].encode_fn, ds.x_train[rows],
                                         config.train.eval_batch_size, mesh)
    return variants.on_manifold_learned(model, a, decoders[0].func, stacked, lo, hi), mu
  raise ValueError(f"unknown variant {variant!r}; allowed: {dmr_config.VARIANTS}.")


def train_one_classifier(config: ml_collections.ConfigDict, ds: Dataset, variant: str, n: int,
                         seed: int, workdir: str, mesh) -> steps.TrainState:
  """Trains (or resumes, or loads when finished) the classifier (variant, n, seed)."""
  subset = ds.first_n(n)
  t = config.train
  model, tx = model_and_optimizer(config, ds, n)
  state = steps.init_state(model, tx, jax.random.key(seed), ds.image_shape)
  second_half, aux = training_variant(config, ds, variant, n, model, workdir, mesh)
  train_step = steps.make_train_step(model, tx, second_half, half=t.batch_size // 2)
  return loop.run_epochs(
      train_step, state, subset.x_train, subset.y_train, epochs=t.epochs,
      batch_size=t.batch_size, seed=seed, workdir=model_dir(workdir, variant, n, seed), mesh=mesh,
      checkpoint_every_steps=t.checkpoint_every_steps, log_every_steps=t.log_every_steps,
      desc=f"{variant} n={n} seed={seed}", aux=aux)


def load_classifier(config: ml_collections.ConfigDict, ds: Dataset, variant: str, n: int,
                    seed: int, workdir: str, mesh) -> jax.tree_util.Partial:
  """logits_fn of the finished classifier (variant, n, seed), BatchNorm in inference mode."""
  model, tx = model_and_optimizer(config, ds, n)
  like = parallel.replicate(steps.init_state(model, tx, jax.random.key(seed), ds.image_shape),
                            mesh)
  ckpt = checkpoint.Checkpointer(os.path.join(model_dir(workdir, variant, n, seed),
                                              "checkpoints"))
  try:
    state = ckpt.restore(like)
  finally:
    ckpt.close()
  if state is None:
    raise FileNotFoundError(f"classifier {variant} n={n} seed={seed} has no checkpoint in "
                            f"{model_dir(workdir, variant, n, seed)}: run the classifiers stage.")
  return steps.make_logits_fn(model, state.params, state.batch_stats)


def test_error(config: ml_collections.ConfigDict, ds: Dataset, state: steps.TrainState,
               mesh) -> float:
  """Fraction of the test set misclassified, BatchNorm in inference mode."""
  logits_fn = steps.make_logits_fn(make_model(config, ds.num_classes), state.params,
                                   state.batch_stats)
  labels = robustness.predict(logits_fn, ds.x_test, config.train.eval_batch_size, mesh)
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


def manifolds_stage(config: ml_collections.ConfigDict, workdir: str, mesh) -> None:
  """Trains (or resumes; skips when finished) the dataset's VAE-GANs, one per class and one
  class-agnostic, under workdir/manifolds/; records their quality (dmr.learned_manifold). Later
  stages load them with learned_manifold.load_vaegans(config, workdir, ds)."""
  learned_manifold.train_all(config, load_dataset(config), workdir, mesh)


def examples_path(workdir: str, variant: str, n: int, seed: int) -> str:
  return os.path.join(workdir, "examples", f"{variant}_n{n}_seed{seed}.npz")


EXAMPLES = 8  # Test images per model whose adversarial examples are kept for the report.


def attack_one_classifier(config: ml_collections.ConfigDict, ds: Dataset, record: dict,
                          vaes, workdir: str, mesh) -> dict:
  """Off- and on-manifold success rates of one trained classifier (fields of its record)."""
  variant, n, seed = record["variant"], record["n"], record["seed"]
  logits_fn = load_classifier(config, ds, variant, n, seed, workdir, mesh)
  key = jax.random.key(config.seed)  # The same attack noise for every model.
  a, o = config.attack, config.on_manifold_attack
  off, x_off = robustness.off_manifold(logits_fn, np.asarray(ds.x_test[:a.num_test]),
                                       ds.y_test[:a.num_test], a, key, mesh)
  if config.dataset == "fonts":
    rows = np.arange(min(o.num_test, len(ds.y_test)))
    on = robustness.on_manifold_true(logits_fn, ds.x_test.prototypes_at(rows),
                                     ds.x_test.theta[rows], ds.y_test[rows],
                                     ds.x_test.theta_range, o, key, mesh)
  else:
    on = robustness.on_manifold_learned(logits_fn, vaes, np.asarray(ds.x_test[:o.num_test]),
                                        ds.y_test[:o.num_test], o, key, mesh)
  if jax.process_index() == 0:
    shown = on.rows[:EXAMPLES]
    os.makedirs(os.path.dirname(examples_path(workdir, variant, n, seed)), exist_ok=True)
    np.savez(examples_path(workdir, variant, n, seed), x=np.asarray(ds.x_test[shown]),
             x_off=x_off[shown], x_on=on.x_on[:EXAMPLES], x_on_adv=on.x_on_adv[:EXAMPLES])
  return {"off_manifold_success": off.success, "off_manifold_success_any": off.success_any,
          "off_manifold_correct": off.correct, "on_manifold_success": on.rates.success,
          "on_manifold_success_any": on.rates.success_any,
          "on_manifold_evaluated": on.rates.evaluated, "on_manifold_correct": on.rates.correct}


def attacks_stage(config: ml_collections.ConfigDict, workdir: str, mesh) -> None:
  """Attacks every trained classifier that has no success rates yet."""
  ds = load_dataset(config)
  vaes = None if config.dataset == "fonts" else learned_manifold.load_vaegans(config, workdir,
                                                                              ds, mesh)
  for record in results.load(workdir)["records"]:
    if "test_error" not in record or "on_manifold_success" in record:
      continue
    fields = attack_one_classifier(config, ds, record, vaes, workdir, mesh)
    if jax.process_index() == 0:
      results.update_record(workdir, record["variant"], record["n"], record["seed"], **fields)
    logging.info("%s n=%d seed=%d: off-manifold success %.3f (any %.3f), on-manifold %.3f "
                 "(any %.3f)", record["variant"], record["n"], record["seed"],
                 fields["off_manifold_success"], fields["off_manifold_success_any"],
                 fields["on_manifold_success"], fields["on_manifold_success_any"])


def reference_model(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """The model whose adversarial examples claim 1 measures: normal, largest N, first seed."""
  records = [r for r in results.load(workdir)["records"] if "test_error" in r]
  if not records:
    raise FileNotFoundError(f"no trained classifier in {workdir}: run the classifiers stage.")
  normal = [r for r in records if r["variant"] == "normal"] or records
  return max(normal, key=lambda r: (r["n"], -r["seed"]))


def _mean(values) -> float:
  return float(np.nanmean(np.asarray(values, np.float64)))


def distance_summary(distance_fn, x, x_off, x_on_adv) -> dict:
  """Mean distances to a manifold (distance_fn: images -> [N]) of test images x, their regular
  adversarial examples x_off and on-manifold adversarial examples x_on_adv; and the share of the
  regular perturbations' squared norm that leaves the manifold,
  sum(d(x_off)^2 - d(x)^2) / sum(||x_off - x||^2): 1 when they are orthogonal to the manifold, 0
  along it (a ratio of sums: the approximate projections' per-image noise averages out)."""
  d_test, d_off = distance_fn(x), distance_fn(x_off)
  norm = np.linalg.norm((x_off - x).reshape(len(x), -1), axis=1)
  leaving = np.sum(d_off**2 - d_test**2) / max(float(np.sum(norm**2)), 1e-12)
  return {"test_distance": _mean(d_test), "off_adversarial_distance": _mean(d_off),
          "on_adversarial_distance": _mean(distance_fn(x_on_adv)),
          "perturbation_norm": _mean(norm), "off_manifold_fraction": float(leaving)}


def distances_stage(config: ml_collections.ConfigDict, workdir: str, mesh) -> None:
  """Claim 1: distances of test images and of their off- and on-manifold adversarial examples
  to the manifold (learned: class-agnostic VAE-GAN; FONTS: also the true manifold), and the
  local-subspace residuals and angle of the perturbations."""
  if "local" in results.load(workdir)["manifold"]:
    logging.info("skip distances: finished")
    return
  ds, d = load_dataset(config), config.distances
  ref = reference_model(config, workdir)
  logits_fn = load_classifier(config, ds, ref["variant"], ref["n"], ref["seed"], workdir, mesh)
  key = jax.random.key(config.seed)
  rows = np.arange(min(d.num_test, len(ds.y_test)))
  x, y = np.asarray(ds.x_test[rows]), ds.y_test[rows]
  _, x_off = robustness.off_manifold(logits_fn, x, y, config.attack, key, mesh)
  fields = {"model": results.model_key(ref["variant"], ref["n"], ref["seed"])}
  batch = config.attack.batch_size

  def project_learned(images, decode, encode):
    z0 = learned_manifold.apply_in_batches(encode, images, batch, mesh)
    project = lambda xb, zb, k: manifold_lib.project_onto_decoder(
        decode, xb, zb, key=k, steps=d.projection_steps, lr=d.projection_lr,
        restarts=d.projection_restarts).distance
    return parallel.map_in_batches(project, (images, z0), batch, mesh, key)

  if config.dataset == "fonts":
    prototypes = ds.x_test.prototypes_at(rows)
    on = robustness.on_manifold_true(logits_fn, prototypes, ds.x_test.theta[rows], y,
                                     ds.x_test.theta_range, config.on_manifold_attack, key, mesh)

    def project_true(images, protos):
      project = lambda xb, pb, k: project_to_true_manifold(
          xb, pb, k, ds.x_test.theta_range, steps=d.projection_steps).distance
      return parallel.map_in_batches(project, (images, protos), batch, mesh, key)

    fields["true"] = distance_summary(lambda images: project_true(images, prototypes), x, x_off,
                                      on.x_on_adv)
  else:
    vaes = learned_manifold.load_vaegans(config, workdir, ds, mesh)
    on = robustness.on_manifold_learned(logits_fn, vaes, x, y, config.on_manifold_attack, key,
                                        mesh)
    agnostic = vaes.agnostic
    fields["learned"] = distance_summary(
        lambda images: project_learned(images, agnostic.decode_fn, agnostic.encode_fn), x, x_off,
        on.x_on_adv)
  index = manifold_lib.build_neighbour_index(ds.x_train, d.pca_dims, seed=config.seed)
  local = parallel.map_in_batches(
      lambda xb, ab: manifold_lib.local_subspace_distances(
          xb, ab, jnp.asarray(np.asarray(ds.x_train[np.asarray(
              manifold_lib.nearest_neighbours(index, xb, d.neighbours))]))),
      (x, x_off), batch, mesh)
  fields["local"] = {"residual_clean": _mean(local.clean),
                     "residual_adversarial": _mean(local.adversarial),
                     "residual_perturbation": _mean(local.perturbation),
                     "angle_degrees": _mean(local.angle),
                     # The expected angle of a random direction to a (K-1)-dim subspace of R^D.
                     "random_direction_angle_degrees": float(np.degrees(np.arccos(np.sqrt(
                         (d.neighbours - 1) / np.prod(ds.image_shape)))))}
  if jax.process_index() == 0:
    results.update_manifold(workdir, **fields)
  logging.info("distances: %s", fields)


def report_stage(config: ml_collections.ConfigDict, workdir: str, mesh) -> None:
  """Writes workdir/report/report.md and its figures from results.json."""
  del mesh
  examples = None
  records = [r for r in results.load(workdir)["records"] if "on_manifold_success" in r]
  if records:
    ref = reference_model(config, workdir)
    path = examples_path(workdir, ref["variant"], ref["n"], ref["seed"])
    if os.path.exists(path):
      with np.load(path) as f:
        examples = dict(f)
  if jax.process_index() == 0:
    path = report.write_report(workdir, config.dataset, examples)
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
