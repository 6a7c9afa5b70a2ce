"""Checkpoints: exact resume after SIGKILL, skipping finished models, unreadable checkpoints."""
import os
import shutil
import signal
import subprocess
import time

import jax
import numpy as np
import pytest

from dmr import checkpoint, results
from dmr.train import classifier
from tests.helpers import CLASSIFIERS_ONLY, REPO, final_state, main_command, run_main, subprocess_env
from tests.test_config import get_config

# 1000 examples, batch 100, 3 epochs: 30 steps, a checkpoint every 4 (mid-epoch) and per epoch.
OVERRIDES = CLASSIFIERS_ONLY + ("--config.training_sizes=(1000,)", "--config.train.epochs=3",
             "--config.train.checkpoint_every_steps=4")


def smoke_config():
  config = get_config("fashion", "smoke")
  config.training_sizes = (1000,)
  config.train.epochs = 3
  return config


def latest_step(workdir):
  directory = os.path.join(classifier.model_dir(workdir, "normal", 1000, 0), "checkpoints")
  steps = [int(d) for d in os.listdir(directory) if d.isdigit()] if os.path.isdir(directory) else []
  return max(steps, default=None)


def test_sigkill_mid_epoch_then_rerun_ends_bit_identical(tmp_path):
  reference, killed = str(tmp_path / "reference"), str(tmp_path / "killed")
  run_main(reference, *OVERRIDES)

  proc = subprocess.Popen(main_command(killed, *OVERRIDES), cwd=REPO, env=subprocess_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 120
  while (latest_step(killed) or 0) < 12 and time.time() < deadline and proc.poll() is None:
    time.sleep(0.02)
  assert proc.poll() is None, "the run finished before it could be killed"
  os.kill(proc.pid, signal.SIGKILL)
  proc.wait()
  killed_at = latest_step(killed)
  assert 12 <= killed_at < 30
  assert results.find_record(killed, "normal", 1000, 0) is None

  run_main(killed, *OVERRIDES)
  config = smoke_config()
  a = final_state(reference, "normal", 1000, 0, config)
  b = final_state(killed, "normal", 1000, 0, config)
  assert int(a.step) == int(b.step) == 30
  jax.tree.map(np.testing.assert_array_equal, a.params, b.params)
  jax.tree.map(np.testing.assert_array_equal, a.batch_stats, b.batch_stats)
  assert (results.find_record(reference, "normal", 1000, 0)["test_error"]
          == results.find_record(killed, "normal", 1000, 0)["test_error"])


def test_finished_model_is_skipped_and_damaged_checkpoint_is_kept(tmp_path):
  workdir = str(tmp_path / "run")
  run_main(workdir, *CLASSIFIERS_ONLY, "--config.training_sizes=(300,)")
  before = results.load(workdir)
  rerun = run_main(workdir, *CLASSIFIERS_ONLY, "--config.training_sizes=(300,)")
  assert "skip normal n=300 seed=0: finished" in rerun.stderr
  assert results.load(workdir) == before

  # A damaged checkpoint of an unfinished model stops the run and is not overwritten.
  os.remove(results.path(workdir))
  ckpt_dir = os.path.join(classifier.model_dir(workdir, "normal", 300, 0), "checkpoints")
  step_dir = os.path.join(ckpt_dir, str(max(int(d) for d in os.listdir(ckpt_dir) if d.isdigit())))
  for root, _, files in os.walk(step_dir):
    for name in files:
      with open(os.path.join(root, name), "wb") as f:
        f.write(b"garbage")
  snapshot = {os.path.join(r, n): open(os.path.join(r, n), "rb").read()
              for r, _, fs in os.walk(ckpt_dir) for n in fs}
  out = subprocess.run(main_command(workdir, *CLASSIFIERS_ONLY, "--config.training_sizes=(300,)"), cwd=REPO,
                       env=subprocess_env(), capture_output=True, text=True)
  assert out.returncode == 2 and "Traceback" not in out.stderr
  assert "error: The checkpoint" in out.stderr and "cannot be read" in out.stderr
  assert "delete or move" in out.stderr
  after = {os.path.join(r, n): open(os.path.join(r, n), "rb").read()
           for r, _, fs in os.walk(ckpt_dir) for n in fs}
  assert after == snapshot


def test_restore_without_checkpoint_returns_none(tmp_path):
  ckpt = checkpoint.Checkpointer(str(tmp_path / "none"))
  assert ckpt.restore({"a": np.zeros(2)}) is None
  ckpt.close()
