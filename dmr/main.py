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
from dmr import data, errors, experiments, fingerprint, parallel, plan, progress, report, results
from dmr.config import command_line

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


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing with one-line errors (exit status 2) instead of tracebacks."""
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # Unknown fields raise KeyError or AttributeError from ml_collections.
    _exit_user_error(command_line.override_error(argv, e))


def _exit_user_error(error: errors.UserError) -> None:
  print(f"error: {error}", file=sys.stderr, flush=True)
  sys.exit(errors.EXIT_STATUS)


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


def summary(workdir: str, seconds: dict[str, float]) -> str:
  """The end of a run: wall time per stage, the claims' verdicts (report/claims.json, as the
  report stage wrote them), where the outputs are."""
  lines = ["Time per stage: " + ", ".join(f"{s} {t:.1f} s" for s, t in seconds.items())
           + f" (total {sum(seconds.values()):.1f} s; {os.path.join(workdir, PROFILE_FILE)})"]
  for claim in report.written_claims(workdir) or []:
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
  fingerprint.group_workdir); returns the directory written. dry_run: print the plan and stop."""
  dmr_config.validate(config)
  progress.configure(config)
  workdir = fingerprint.group_workdir(os.path.abspath(workdir), config, drift)
  ds = data.load_configured(config.dataset, config.data)
  run_plan = plan.make(config, workdir, ds)
  if dry_run:
    print(plan.describe(run_plan))
    plan.check(run_plan, config, workdir, ds, write_test=False)
    return workdir
  plan.check(run_plan, config, workdir, ds)
  if jax.process_index() == 0:
    fingerprint.record(workdir, config)
  results.set_fingerprint(fingerprint.of_config(config)["digest"])
  logging.info("devices: %d (%d processes); workdir %s", jax.device_count(), jax.process_count(),
               workdir)
  started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
  seconds = run_stages(config, workdir, parallel.data_mesh())
  if jax.process_index() == 0:
    append_profile(workdir, started, seconds)
    print(summary(workdir, seconds), flush=True)
  return workdir


def load_config():
  """The --config ConfigDict; a UserError when its file does not load."""
  config_arg = f"--config={flags.FLAGS['config'].serialize().split('=', 1)[-1]}"
  return command_line.loaded(_CONFIG.value, config_arg)


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
      print(command_line.describe(config))
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
