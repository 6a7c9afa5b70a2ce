"""Entry point: python -m dmr.main --config=configs/fashion.py[:preset] --workdir=DIR.

Runs config.stages (see dmr/experiments.py) and writes config.json, per-model checkpoints and
metrics, results.json and report/ into the workdir. Rerunning the same command resumes.
"""
from __future__ import annotations

import logging as py_logging
import os

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from dmr import config as dmr_config
from dmr import experiments, parallel, results

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/fashion.py:quick",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, results and report.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  config = _CONFIG.value
  dmr_config.validate(config)
  if config.parallel.distributed:
    parallel.initialize_distributed(config.parallel.coordinator_address,
                                    config.parallel.num_processes, config.parallel.process_id)
  workdir = os.path.abspath(_WORKDIR.value)
  os.makedirs(workdir, exist_ok=True)
  if jax.process_index() == 0:
    results.write_json_atomic(os.path.join(workdir, "config.json"), config.to_dict())
  logging.info("devices: %d (%d processes); workdir %s", jax.device_count(), jax.process_count(),
               workdir)
  experiments.run(config, workdir)
  print(f"Results: {results.path(workdir)}")


class _DropLibraryChatter(py_logging.Filter):
  """Keeps dmr's INFO logs and drops Orbax's per-save INFO lines (warnings pass)."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    return record.levelno >= py_logging.WARNING or "orbax" not in record.pathname


def run():
  py_logging.getLogger("absl").addFilter(_DropLibraryChatter())
  app.run(main)


if __name__ == "__main__":
  run()
