"""Entry point: python -m dmr.main --config=configs/fashion.py[:preset] --workdir=DIR.

Checks the run before any work (the config, the data, the inputs of every stage, the workdir and
its fingerprint), then runs config.stages (dmr/experiments.py's STAGES) and writes config.json,
fingerprint.json, per-model checkpoints and metrics, results.json, report/ and profile.json into
the workdir. Rerunning the same command resumes.

  --dry_run        print the plan (every unit of work, its inputs and steps) and stop
  --print_config   print the resolved config with the meaning of every field and stop
  --config_drift   what to do when the workdir was made under other result-changing settings

A user error (bad config, missing data or input, config drift, a full or read-only disk) prints
one line `error: ...` and exits with status 2; an internal error keeps its traceback.
"""
from __future__ import annotations

import datetime
import json
import logging as py_logging
import os
import sys
import time

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from dmr import config as dmr_config
from dmr import (data, errors, experiments, fingerprint, parallel, plan, progress, report,
                 results)

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. configs/fashion.py:quick", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, results and report.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the plan of the run and stop.")
_PRINT_CONFIG = flags.DEFINE_bool(
    "print_config", False, "Print the resolved config, every field with its meaning, and stop.")
DRIFT_CHOICES = ("refuse", "new_group")
_CONFIG_DRIFT = flags.DEFINE_enum(
    "config_drift", "refuse", DRIFT_CHOICES,
    "When the workdir's fingerprint differs from this config's: refuse (list the differences), or "
    "new_group (run in WORKDIR/groups/<fingerprint>/, a separate group of models and results).")
_COMPILATION_CACHE = flags.DEFINE_string(
    "compilation_cache", os.path.join("~", ".cache", "dmr", "xla"),
    "Directory of XLA's persistent compilation cache: every model of a run after the first (and "
    "every rerun) reuses the compiled train steps and attacks. Empty: no cache. The environment's "
    "JAX_COMPILATION_CACHE_DIR, when set, takes precedence.")
flags.mark_flags_as_required(["config"])

PROFILE_FILE = "profile.json"
GROUPS_DIR = "groups"


# --- The meaning of every config field (--print_config) ---------------------------------------

_ATTACK_FIELDS = {
    "eps": "radius of the attack's L-p ball",
    "norm": "the attack's norm: linf | l2 | l1",
    "steps": "iterations of the attack",
    "step_size": "step size of each iteration",
    "optimizer": "update rule: sign (signed gradient) | adam",
    "init": "start: paper | uniform (random in the ball) | zero",
    "restarts": "independent restarts per input",
    "early_stop": "stop a row once it is misclassified (False keeps the highest-loss iterate)",
    "num_test": "test images attacked (the first ones)",
    "batch_size": "images per batch of the attack (memory only)",
}
FIELD_HELP = {
    "dataset": "fashion_mnist | emnist | celeb_a | fonts",
    "preset": "paper | claims | quick | smoke: the column of defaults this config started from",
    "progress": "progress bars with ETA on a terminal (dmr.progress); False: none",
    "seed": "base seed; the models of each size have seeds seed, seed + 1, ...",
    "seeds": "offset of each random stream from the seed; changing one moves no other stream",
    "stages": "stages to run, in order: manifolds, classifiers, attacks, distances, report",
    "training_sizes": "training set sizes N (the first N training images)",
    "variant_training_sizes": "per variant, the N of training_sizes it trains at (None: all)",
    "models_per_size": "models (seeds) per variant and training size",
    "variants": "training variants: normal, off_adv, on_adv_learned, on_adv_true, stn_augm, "
                "stn_adv",
    "manifolds": "data manifolds of the run: learned (VAE-GANs) and/or true (FONTS only); the "
                 "first is the one the attacks stage reports",
    "stn_theta_range": "theta range of stn_augm and stn_adv: augmentation or a FONTS difficulty",
    "data.dir": "directory of the data files (None: the source's default)",
    "data.num_train": "FONTS training images",
    "data.num_test": "FONTS test images",
    "data.seed": "FONTS seed of the transformations",
    "data.difficulty": "FONTS theta range: easy | moderate | hard",
    "data.max_fonts": "FONTS: use only the first fonts (None: every usable font)",
    "classifier.architecture": "classifier network",
    "train.epochs": "classifier training epochs",
    "train.min_steps": "least optimizer steps per classifier; epochs rise at small N (None: off)",
    "train.batch_size": "classifier training batch size (half clean, half the variant's)",
    "train.learning_rate": "Adam learning rate",
    "train.lr_decay": "learning-rate decay per epoch, applied continuously every batch",
    "train.b1": "Adam beta1",
    "train.b2": "Adam beta2",
    "train.weight_decay": "coupled L2 weight decay on all parameters",
    "train.eval_batch_size": "images per batch when evaluating (memory only)",
    "train.checkpoint_every_steps": "steps between checkpoints (and at every epoch's end)",
    "train.log_every_steps": "steps between metrics.jsonl records",
    **{f"attack.{k}": f"off-manifold evaluation attack: {v}" for k, v in _ATTACK_FIELDS.items()},
    **{f"on_manifold_attack.{k}": f"on-manifold evaluation attack (latent or theta space): {v}"
       for k, v in _ATTACK_FIELDS.items()},
    "on_manifold_attack.eps_agnostic": "on-manifold attack radius in the class-agnostic "
                                       "VAE-GAN's latent space",
    "attack.cross_check": "None, or dmr.attacks.evaluate attacks run beside the paper's attack "
                          "(an input broken by either counts)",
    "attack.variants": "None (every variant), or the variants whose models the attacks stage "
                       "attacks (claim 4's own models always)",
    "claim4.architecture": "claim 4's own models: their classifier (None: claim 4 uses the "
                           "sweep's models)",
    "claim4.epochs": "claim 4's own models: training epochs (None: train.epochs)",
    "claim4.training_size": "claim 4's own models: their N (None: the largest of training_sizes)",
    **{f"adversarial_training.{k}": f"attack of adversarial training: {v}"
       for k, v in _ATTACK_FIELDS.items()},
    "adversarial_training.off_eps": "adversarial training: image-space L-inf radius (off_adv)",
    "adversarial_training.on_eps": "adversarial training: latent or theta radius (on_adv_*)",
    "adversarial_training.stn_eps": "adversarial training: theta radius around the identity "
                                    "(stn_adv)",
    "distances.num_test": "test images whose distances to the manifold are measured",
    "distances.projection_steps": "Adam steps of each projection onto a manifold",
    "distances.projection_lr": "learning rate of the projections",
    "distances.projection_restarts": "restarts of each projection",
    "distances.neighbours": "nearest training images spanning each local subspace",
    "distances.pca_dims": "dimensions of the PCA space the neighbours are searched in",
    "vaegan.latent_dim": "VAE-GAN latent dimensions",
    "vaegan.epochs": "VAE-GAN training epochs",
    "vaegan.beta": "weight of the L1 reconstruction loss (class-specific VAE-GANs)",
    "vaegan.beta_agnostic": "weight of the L1 reconstruction loss (class-agnostic VAE-GAN)",
    "vaegan.gamma": "weight of the GAN losses",
    "vaegan.learning_rate": "VAE-GAN Adam learning rate",
    "vaegan.lr_decay": "VAE-GAN learning-rate decay per epoch",
    "vaegan.b1": "VAE-GAN Adam beta1",
    "vaegan.b2": "VAE-GAN Adam beta2",
    "vaegan.weight_decay": "VAE-GAN coupled L2 weight decay",
    "vaegan.batch_size": "VAE-GAN training batch size",
    "vaegan.channels": "channels of the first encoder conv (doubling) and last decoder conv",
    "vaegan.discriminator_channels": "channels of the discriminator's first conv",
    "vaegan.max_train_images": "train each VAE-GAN on the first images of its class only "
                               "(None: all)",
    "vaegan.eval_batch_size": "images per batch when evaluating VAE-GANs (memory only)",
    "vaegan.checkpoint_every_steps": "VAE-GAN steps between checkpoints",
    "vaegan.log_every_steps": "VAE-GAN steps between metrics.jsonl records",
    "parallel.distributed": "call jax.distributed.initialize (multi-host runs)",
    "parallel.coordinator_address": "multi-host: address of process 0 (None: auto-detected)",
    "parallel.num_processes": "multi-host: number of processes (None: auto-detected)",
    "parallel.process_id": "multi-host: this process's index (None: auto-detected)",
}


def describe_config(config) -> str:
  """Every field of `config` as `name = value  # meaning`, result-changing ones marked."""
  fields = fingerprint.flat_fields(config)
  changing = fingerprint.result_fields(config)
  width = max(len(f"{k} = {v!r}") for k, v in fields.items())
  lines = ["# * marks the fields in the fingerprint (they change results)."]
  for name, value in fields.items():
    setting = f"{name} = {value!r}"
    meaning = FIELD_HELP.get(name, FIELD_HELP.get(name.split(".")[0], "(no description)"))
    lines.append(f"{'*' if name in changing else ' '} {setting:{width}s}  # {meaning}")
  return "\n".join(lines)


# --- Flags ---------------------------------------------------------------------------------------

def _override_error(argv: list[str], error: Exception) -> errors.UserError:
  """The user's mistake behind a failed flag parse: an unknown config field (with close
  matches), a value of the wrong type, or a config file that does not load."""
  config_arg = next((a for a in argv if a.startswith("--config=")), None)
  if config_arg is None:
    return errors.UserError(f"{error}")
  probe = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=probe,
                                  sys_argv=[argv[0], config_arg])
  try:
    probe([argv[0], config_arg])
    config = probe.config
  except Exception as e:  # The config file itself does not load.
    return errors.UserError(f"{config_arg}: the config cannot be loaded ({e}).")
  known = fingerprint.flat_fields(config, sections=True)
  for arg in argv[1:]:
    if arg.startswith("--config."):
      name = arg[len("--config."):].split("=", 1)[0]
      if name not in known:
        return errors.UserError(
            f"{arg}: the config has no field {name!r}.{errors.close_matches(name, known)} "
            f"(--print_config lists every field)")
  return errors.UserError(f"{error}".strip().splitlines()[0])


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing with one-line errors (exit status 2) instead of tracebacks."""
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # Unknown fields raise KeyError or AttributeError from ml_collections.
    _exit_user_error(_override_error(argv, e))


def _exit_user_error(error: errors.UserError) -> None:
  print(f"error: {error}", file=sys.stderr, flush=True)
  sys.exit(errors.EXIT_STATUS)


# --- Fingerprint -------------------------------------------------------------------------------

def group_workdir(workdir: str, config, drift: str) -> str:
  """The directory this run writes into: `workdir` when its fingerprint (fingerprint.json) is
  absent or equal to the config's; else WORKDIR/groups/<fingerprint> under
  --config_drift=new_group, and a UserError listing the differing fields otherwise."""
  ours, theirs = fingerprint.of_config(config), fingerprint.read(workdir)
  if theirs is None or theirs["digest"] == ours["digest"]:
    return workdir
  if drift == "new_group":
    return os.path.join(workdir, GROUPS_DIR, ours["digest"])
  changed = fingerprint.differences(theirs["fields"], ours["fields"])
  raise errors.UserError(
      f"{workdir} holds results made under other settings (fingerprint {theirs['digest']}, this "
      f"config {ours['digest']}): {'; '.join(changed)}. Use a new --workdir, or pass "
      f"--config_drift=new_group to train and evaluate models under the new settings as a "
      f"separate group in {os.path.join(workdir, GROUPS_DIR, ours['digest'])} (never averaged "
      f"with the others).")


def record_config(workdir: str, config) -> None:
  """Writes config.json and, on the first run in `workdir`, fingerprint.json."""
  results.write_json_atomic(os.path.join(workdir, "config.json"), config.to_dict())
  with results.locked(workdir):
    if fingerprint.read(workdir) is None:
      results.write_json_atomic(fingerprint.path(workdir), fingerprint.of_config(config))


# --- Running -------------------------------------------------------------------------------------

def run_stages(config, workdir: str, mesh) -> dict[str, float]:
  """Runs config.stages in order; returns the wall seconds of each."""
  seconds = {}
  for stage in config.stages:
    logging.info("stage %s", stage)
    start = time.perf_counter()
    experiments.STAGES[stage](config, workdir, mesh)
    seconds[stage] = round(time.perf_counter() - start, 3)
  return seconds


def append_profile(workdir: str, started: str, seconds: dict[str, float]) -> None:
  """Appends this run's wall seconds per stage to workdir/profile.json {"runs": [...]}."""
  path = os.path.join(workdir, PROFILE_FILE)
  with results.locked(workdir):
    try:
      with open(path) as f:
        profile = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
      profile = {"runs": []}
    profile["runs"].append({"started": started, "stages": seconds,
                            "total": round(sum(seconds.values()), 3)})
    results.write_json_atomic(path, profile)


def summary(config, workdir: str, seconds: dict[str, float]) -> str:
  """The end of a run: wall time per stage, the claims' verdicts, where the outputs are."""
  lines = ["Time per stage: " + ", ".join(f"{s} {t:.1f} s" for s, t in seconds.items())
           + f" (total {sum(seconds.values()):.1f} s; {os.path.join(workdir, PROFILE_FILE)})"]
  if os.path.exists(results.path(workdir)):
    for claim in report.claims_summary(workdir, config.dataset):
      interval = f" {claim['interval_text']}" if claim.get("interval_text") else ""
      reason = f" ({claim['reason']})" if claim.get("reason") else ""
      lines.append(f"Claim {claim['claim']}: {claim['verdict']}{interval}{reason}")
  lines.append(f"Results: {results.path(workdir)}")
  for name, path in (("Report", os.path.join(workdir, "report", "report.md")),
                     ("TensorBoard", os.path.join(workdir, "tensorboard"))):
    if os.path.exists(path):
      lines.append(f"{name}: {path}")
  return "\n".join(lines)


def execute(config, workdir: str, dry_run: bool = False, drift: str = "refuse") -> str:
  """Checks the run, then runs config.stages into `workdir` (or its group, see
  `group_workdir`); returns the directory written. dry_run: print the plan and stop."""
  dmr_config.validate(config)
  progress.configure(config)
  workdir = group_workdir(os.path.abspath(workdir), config, drift)
  ds = data.load_configured(config.dataset, config.data)
  run_plan = plan.make(config, workdir, ds)
  if dry_run:
    print(plan.describe(run_plan))
    plan.check(run_plan, config, workdir, ds, write_test=False)
    return workdir
  plan.check(run_plan, config, workdir, ds)
  if jax.process_index() == 0:
    record_config(workdir, config)
  results.set_fingerprint(fingerprint.of_config(config)["digest"])
  logging.info("devices: %d (%d processes); workdir %s", jax.device_count(), jax.process_count(),
               workdir)
  started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
  seconds = run_stages(config, workdir, parallel.data_mesh())
  if jax.process_index() == 0:
    append_profile(workdir, started, seconds)
    print(summary(config, workdir, seconds), flush=True)
  return workdir


def load_config():
  """The --config ConfigDict; a UserError when its file does not load."""
  config = _CONFIG.value
  try:
    config.dataset  # The file is loaded lazily, on first access.
  except OSError as e:
    reason = str(e).strip().splitlines()[-1].strip()
    raise errors.UserError(f"--config={flags.FLAGS['config'].serialize().split('=', 1)[-1]}: the "
                           f"config file cannot be loaded ({reason}).") from e
  return config


def enable_compilation_cache(directory: str) -> None:
  """Keeps compiled programs that took over a second to compile in `directory` (jax's
  persistent compilation cache, keyed by the program, the jax version and the backend), so a
  computation compiled once is loaded, not compiled, by later models and runs. The models of a
  run rebuild their train steps and attacks, so without it each model compiles them again
  (measured: an on_adv_learned model of the smoke preset, 51 s without, 17 s with). '' disables
  it; JAX_COMPILATION_CACHE_DIR in the environment, when set, wins."""
  if directory and not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(directory))


def main(argv):
  del argv
  try:
    enable_compilation_cache(_COMPILATION_CACHE.value)
    config = load_config()
    if _PRINT_CONFIG.value:
      print(describe_config(config))
      return
    if not _WORKDIR.value:
      raise errors.UserError("--workdir is required (the directory of the run's outputs).")
    if config.parallel.distributed:
      parallel.initialize_distributed(config.parallel.coordinator_address,
                                      config.parallel.num_processes, config.parallel.process_id)
    execute(config, _WORKDIR.value, _DRY_RUN.value, _CONFIG_DRIFT.value)
  except Exception as e:  # User errors end in one line; anything else keeps its traceback.
    user_error = errors.user_error_of(e)
    if user_error is None:
      raise
    _exit_user_error(user_error)


class _DropLibraryChatter(py_logging.Filter):
  """Keeps dmr's INFO logs and drops Orbax's per-save INFO lines (warnings pass)."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    return record.levelno >= py_logging.WARNING or "orbax" not in record.pathname


def run():
  py_logging.getLogger("absl").addFilter(_DropLibraryChatter())
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
