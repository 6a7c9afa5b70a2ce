"""The plan of a run, checked before any work: every unit of work of config.stages, its inputs,
whether it is already finished in the workdir, and an estimate of its steps.

  run_plan = plan.make(config, workdir, ds)
  print(plan.describe(run_plan))      # --dry_run
  plan.check(run_plan, config, workdir, ds)  # raises dmr.errors.UserError naming what is missing

The config is parsed once, at `make`, into a dmr.specs.RunSpec; `check` reads its stages.

Inputs a unit reads: the data (loaded before the plan, so a missing file stops the run first),
the VAE-GANs of the learned manifold (from the manifolds stage of this run or the workdir), and
trained classifiers (from the classifiers stage of this run or the workdir).
"""
from __future__ import annotations

import dataclasses
import math
import os
import shutil
import tempfile

import jax
import ml_collections

from dmr import attacks, records, results, robustness
from dmr.data.dataset import Dataset, num_batches
from dmr.errors import UserError
from dmr.manifolds import vaegans
from dmr.specs import RunSpec, VaeganSpec
from dmr.train import classifier, variants
from dmr.train import vaegan as vaegan_training

VAEGANS = "VAE-GANs"  # The input the learned manifold needs.
CLASSIFIER = "a trained classifier"
# Checkpoints on disk per trained model while it trains: the kept ones plus one being written.
CHECKPOINTS_ON_DISK = 3


@dataclasses.dataclass(frozen=True)
class Unit:
  """One unit of work: its stage, its name, the inputs it reads, whether the workdir already
  holds its result, its steps (training steps, or attack / projection steps over batches) and
  the checkpoint bytes it writes (0 for units that write none)."""
  stage: str
  name: str
  inputs: tuple[str, ...]
  finished: bool
  steps: int
  checkpoint_bytes: int = 0


def _state_bytes(init) -> int:
  """Bytes of the training state init(key) returns, from its shapes alone (nothing computed)."""
  shapes = jax.eval_shape(init, jax.random.key(0))
  return sum(math.prod(a.shape) * a.dtype.itemsize for a in jax.tree.leaves(shapes)
             if hasattr(a, "dtype"))


def _vaegan_units(v: VaeganSpec, ds: Dataset, workdir: str) -> list[Unit]:
  nets = vaegans.make_nets(v, ds.image_shape)
  size = _state_bytes(lambda key: vaegan_training.init_state(
      nets, vaegans.optimizer_and_step(v, nets, vaegans.AGNOSTIC, 1)[0], key,
      ds.image_shape))
  units = []
  for name in vaegans.model_names(ds.num_classes):
    rows = len(vaegans.class_rows(ds.y_train, name, v.max_train_images))
    units.append(Unit("manifolds", f"VAE-GAN {name}", ("data",),
                      vaegans.read_quality(workdir, name) is not None,
                      v.epochs * num_batches(rows, v.batch_size), CHECKPOINTS_ON_DISK * size))
  return units


def _needs(kind: str) -> tuple[str, ...]:
  """The input a manifold kind reads besides the data."""
  return (VAEGANS,) if kind == "learned" else ()


def _frozen(key: dict) -> tuple:
  return tuple(sorted(key.items()))


def _classifier_units(run: RunSpec, ds: Dataset, workdir: str) -> list[Unit]:
  """One unit per model of run.model_keys, each under its family's architecture and epochs."""
  finished = {_frozen(results.record_key(r)) for r in results.load(workdir)["records"]
              if records.is_trained(r)}
  units, sizes = [], {}
  for key in run.model_keys():
    spec = run.family(key.get("family"))
    t, kind = spec.train, variants.MANIFOLD_OF.get(key["variant"])
    if spec.architecture not in sizes:
      sizes[spec.architecture] = _state_bytes(
          lambda k: classifier.initial_state(spec, ds, 1, k)[2])
    units.append(Unit("classifiers", classifier.model_name(key),
                      ("data",) + (_needs(kind) if kind else ()), _frozen(key) in finished,
                      t.epochs_at(key["n"]) * t.steps_per_epoch(key["n"]),
                      CHECKPOINTS_ON_DISK * sizes[spec.architecture]))
  return units


def _attack_steps(spec: attacks.AttackSpec, batch_size: int, num_test: int) -> int:
  return num_batches(num_test, batch_size) * spec.steps * spec.restarts


def _models_to_attack(run: RunSpec, workdir: str) -> list[str]:
  """Names of the models the attacks stage will attack: trained ones without success rates,
  in the workdir or trained by this run (claim 4's own family included)."""
  recorded = results.load(workdir)["records"]
  attacked = {_frozen(results.record_key(r)) for r in recorded if records.is_attacked(r)}
  trained = {_frozen(results.record_key(r)) for r in recorded if records.is_trained(r)}
  if "classifiers" in run.stages:
    trained |= {_frozen(key) for key in run.model_keys()}
  keys = sorted((dict(k) for k in trained - attacked if run.is_attacked(dict(k))),
                key=results.sort_key)
  return [classifier.model_name(key) for key in keys]


def _cross_check_steps(names: tuple[str, ...] | None, num_classes: int) -> int:
  """Gradient steps (Square: queries) of the cross-check attacks `names` per batch, at most:
  each attack runs on the inputs still unbroken; APGD-T once per target class."""
  steps = {"apgd-t": min(9, num_classes - 1) * robustness.CROSS_CHECK_STEPS,
           "square": robustness.CROSS_CHECK_QUERIES}
  return sum(steps.get(name, robustness.CROSS_CHECK_STEPS) for name in names or ())


def _attack_units(run: RunSpec, workdir: str, ds: Dataset) -> list[Unit]:
  a = run.attacks
  steps = (_attack_steps(a.off, a.batch_size, a.num_test)
           + _attack_steps(a.on, a.on_batch_size, a.on_num_test)
           + num_batches(a.num_test, a.batch_size) * _cross_check_steps(a.cross_check,
                                                                        ds.num_classes))
  inputs = (CLASSIFIER, "data") + _needs(run.manifolds[0])
  return [Unit("attacks", name, inputs, False, steps)
          for name in _models_to_attack(run, workdir)]


def _distance_unit(run: RunSpec, workdir: str) -> Unit:
  d, a = run.distances, run.attacks
  kinds = run.manifolds
  projections = len(kinds) * 3 * num_batches(d.num_test, a.batch_size) * (
      d.projection_steps * d.projection_restarts)
  steps = (_attack_steps(a.off, a.batch_size, d.num_test)
           + len(kinds) * _attack_steps(a.on, a.on_batch_size, d.num_test) + projections)
  inputs = (CLASSIFIER, "data") + tuple(dict.fromkeys(i for k in kinds for i in _needs(k)))
  return Unit("distances", "distances to " + ", ".join(kinds), inputs,
              "local" in results.load(workdir)["manifold"], steps)


def make(config: ml_collections.ConfigDict, workdir: str, ds: Dataset) -> list[Unit]:
  """Every unit of work of config.stages, in run order."""
  run = RunSpec.from_config(config)
  build = {
      "manifolds": lambda: _vaegan_units(run.vaegan, ds, workdir),
      "classifiers": lambda: _classifier_units(run, ds, workdir),
      "attacks": lambda: _attack_units(run, workdir, ds),
      "distances": lambda: [_distance_unit(run, workdir)],
      "report": lambda: [Unit("report", "report.md", ("results.json",), False, 0)],
  }
  return [unit for stage in run.stages for unit in build[stage]()]


def _available(stages: tuple[str, ...], workdir: str, ds: Dataset) -> set[str]:
  """The inputs a run of `stages` has or will have made before a later stage reads them."""
  have = {"data", "results.json"}
  if "manifolds" in stages or all(
      vaegans.read_quality(workdir, name) is not None
      for name in vaegans.model_names(ds.num_classes)):
    have.add(VAEGANS)
  if "classifiers" in stages or any(
      records.is_trained(r) for r in results.load(workdir)["records"]):
    have.add(CLASSIFIER)
  return have


FIX = {
    VAEGANS: "add the manifolds stage (--config.stages='(\"manifolds\", ...)') or use the "
             "--workdir that holds them",
    CLASSIFIER: "add the classifiers stage (--config.stages='(\"classifiers\", ...)') or use the "
                "--workdir that holds them",
}


def missing_inputs(run_plan: list[Unit], stages: tuple[str, ...], workdir: str,
                   ds: Dataset) -> list[str]:
  """One line per (stage, input) the plan of a run of `stages` needs but will not have."""
  have = _available(stages, workdir, ds)
  missing = {}
  for unit in run_plan:
    if unit.finished:
      continue
    for name in unit.inputs:
      if name not in have:
        missing.setdefault((unit.stage, name), []).append(unit.name)
  return [f"the {stage} stage needs {name} ({', '.join(units[:3])}"
          f"{', ...' if len(units) > 3 else ''}), which {workdir} does not hold and this run "
          f"does not make: {FIX[name]}" for (stage, name), units in missing.items()]


def check_workdir(run_plan: list[Unit], workdir: str) -> None:
  """Raises UserError unless `workdir` is writable and has room for the plan's checkpoints."""
  try:
    os.makedirs(workdir, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=workdir, prefix=".write-test-"):
      pass
  except OSError as e:
    raise UserError(f"the workdir {workdir} is not writable ({e.strerror}); choose another "
                    f"--workdir or fix its permissions.") from e
  needed = sum(u.checkpoint_bytes for u in run_plan if not u.finished)
  free = shutil.disk_usage(workdir).free
  if needed > free:
    raise UserError(f"the checkpoints of this run need about {needed / 1e6:.1f} MB but {workdir} "
                    f"has {free / 1e6:.1f} MB free; free space or choose another --workdir.")


def check(run_plan: list[Unit], config: ml_collections.ConfigDict, workdir: str, ds: Dataset,
          write_test: bool = True) -> None:
  """Raises UserError, before any work, when an input will be missing or (write_test) the
  workdir cannot take the run's checkpoints."""
  missing = missing_inputs(run_plan, tuple(config.stages), workdir, ds)
  if missing:
    raise UserError("; ".join(missing) + ".")
  if write_test:
    check_workdir(run_plan, workdir)


def describe(run_plan: list[Unit]) -> str:
  """The plan as a table: stage, unit, status, steps, inputs."""
  lines = [f"{'stage':12s} {'unit':34s} {'status':9s} {'steps':>10s}  inputs"]
  for u in run_plan:
    lines.append(f"{u.stage:12s} {u.name:34s} {'finished' if u.finished else 'to do':9s} "
                 f"{u.steps:10d}  {', '.join(u.inputs)}")
  todo = [u for u in run_plan if not u.finished]
  lines.append(f"{len(todo)} of {len(run_plan)} units to do, "
               f"{sum(u.steps for u in todo)} steps; checkpoints "
               f"{sum(u.checkpoint_bytes for u in todo) / 1e6:.1f} MB at most.")
  return "\n".join(lines)
