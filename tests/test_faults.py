"""Faults: SIGKILL anywhere, two processes on one model, a full or read-only disk."""
import dataclasses
import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from unittest import mock

import numpy as np
import pytest

from dmr import checkpoint, errors, results
from dmr.data import fashion_mnist, fonts
from dmr.train import classifier, loop
from tests.helpers import CLASSIFIERS_ONLY, REPO, main_command, run_main, subprocess_env


def fonts_available() -> bool:
  try:
    return len(fonts.find_fonts(10).paths) == 10
  except errors.UserError:
    return False


def outputs(workdir: str) -> tuple[dict, str]:
  """What a run leaves for its reader: results.json and report.md (which names its workdir)."""
  with open(os.path.join(workdir, "report", "report.md")) as f:
    return results.load(workdir), f.read().replace(workdir, "WORKDIR")


def start(workdir: str, *overrides: str, config: str) -> subprocess.Popen:
  return subprocess.Popen(main_command(workdir, *overrides, config=config), cwd=REPO,
                          env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)


def kill_after_line(proc: subprocess.Popen, text: str, delay: float) -> bool:
  """SIGKILLs proc `delay` seconds after it logs a line containing `text`; False if it ended
  first."""
  for line in proc.stderr:
    if text in line:
      time.sleep(delay)
      if proc.poll() is not None:
        return False
      os.kill(proc.pid, signal.SIGKILL)
      proc.wait()
      return True
  proc.wait()
  return False


def latest_step(workdir: str) -> int | None:
  directory = os.path.join(classifier.model_dir(workdir, "normal", 200, 0), "checkpoints")
  steps = [int(d) for d in os.listdir(directory) if d.isdigit()] if os.path.isdir(directory) else []
  return max(steps, default=None)


# FONTS (its known manifold needs no VAE-GANs): one model, trained, attacked, reported.
FONTS_RUN = ("--config.variants=('normal',)", "--config.manifolds=('true',)",
             "--config.stages=('classifiers','attacks','report')", "--config.train.epochs=3")


@pytest.mark.slow  # end to end; tests/test_checkpoint.py kills mid-epoch in the default suite
@pytest.mark.skipif(not fonts_available(), reason="needs 10 usable fonts")
def test_killed_in_classifiers_and_in_attacks_then_rerun_matches_uninterrupted(tmp_path):
  config = "configs/fonts.py:smoke"
  reference, killed = str(tmp_path / "reference"), str(tmp_path / "killed")
  run_main(reference, *FONTS_RUN, config=config)
  # Killed mid-training (after its second checkpoint), then mid-attack.
  proc = start(killed, *FONTS_RUN, config=config)
  while (latest_step(killed) or 0) < 2 and proc.poll() is None:
    time.sleep(0.02)
  os.kill(proc.pid, signal.SIGKILL)
  proc.wait()
  assert 2 <= latest_step(killed) < 6
  assert results.find_record(killed, "normal", 200, 0) is None
  assert kill_after_line(start(killed, *FONTS_RUN, config=config), "stage attacks", 0.5)
  assert "off_manifold_success" not in results.find_record(killed, "normal", 200, 0)
  run_main(killed, *FONTS_RUN, config=config)
  assert outputs(killed) == outputs(reference)


@pytest.mark.slow
@pytest.mark.skipif(not fashion_mnist.has_local_files(), reason="needs dataset-fashion-mnist")
def test_killed_at_random_points_in_every_stage_then_rerun_matches_uninterrupted(tmp_path):
  config = "configs/fashion.py:smoke"
  reference, killed = str(tmp_path / "reference"), str(tmp_path / "killed")
  # A first run fills the session's compilation cache, so the reference's stage times are those
  # of the (cached) killed runs, and each kill lands inside its stage.
  run_main(str(tmp_path / "cold"), config=config)
  run_main(reference, config=config)
  with open(os.path.join(reference, "profile.json")) as f:
    seconds = json.load(f)["runs"][0]["stages"]
  rng = random.Random(0)
  for stage, duration in seconds.items():  # Each stage once, at a random moment of its time.
    assert kill_after_line(start(killed, config=config), f"] stage {stage}",
                           rng.uniform(0.0, 0.5) * duration), stage
  run_main(killed, config=config)
  assert outputs(killed) == outputs(reference)


@pytest.mark.skipif(not fashion_mnist.has_local_files(), reason="needs dataset-fashion-mnist")
def test_two_processes_on_one_model_one_trains_the_other_waits(tmp_path):
  workdir = str(tmp_path)
  overrides = CLASSIFIERS_ONLY + ("--config.training_sizes=(1000,)", "--config.train.epochs=2",
                                  "--config.train.checkpoint_every_steps=4")
  first = start(workdir, *overrides, config="configs/fashion.py:smoke")
  checkpoints = os.path.join(classifier.model_dir(workdir, "normal", 1000, 0), "checkpoints")
  while not os.path.isdir(checkpoints) and first.poll() is None:
    time.sleep(0.02)
  os.kill(first.pid, signal.SIGSTOP)  # Mid-training, holding the model.
  second = start(workdir, *overrides, config="configs/fashion.py:smoke")
  second_err = ""
  for line in second.stderr:
    second_err += line
    if "waiting for another process" in line or "Traceback" in line:
      break
  os.kill(first.pid, signal.SIGCONT)
  (_, first_err), (_, rest) = first.communicate(), second.communicate()
  second_err += rest
  assert first.returncode == second.returncode == 0, first_err[-3000:] + second_err[-3000:]
  assert "waiting for another process" in second_err
  assert "normal n=1000 seed=0: test error" in second_err  # Found finished, then evaluated.
  # One training: every step logged once, the last checkpoint is the final step.
  steps = [r["step"] for r in loop.read_metrics(os.path.join(os.path.dirname(checkpoints),
                                                              "metrics.jsonl"))]
  assert steps == list(range(1, 21))
  ckpt = checkpoint.Checkpointer(checkpoints)
  assert ckpt.latest_step() == 20
  ckpt.close()
  assert len(results.load(workdir)["records"]) == 1


# --- A full or read-only disk ----------------------------------------------------------------

def no_space(path):
  return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)


def test_failed_results_write_keeps_the_previous_file(tmp_path):
  workdir = str(tmp_path)
  results.update_record(workdir, "normal", 100, 0, test_error=0.5)
  before = (tmp_path / "results.json").read_bytes()

  def full_disk(fd):
    raise no_space(None)

  with mock.patch("os.fsync", full_disk), pytest.raises(OSError) as raised:
    results.update_record(workdir, "normal", 200, 0, test_error=0.4)
  assert (tmp_path / "results.json").read_bytes() == before
  assert sorted(os.listdir(tmp_path)) == ["results.json", "results.json.lock"]
  message = str(errors.user_error_of(raised.value))
  assert "No space left on device" in message and "results.json and the last complete" in message


def test_failed_checkpoint_save_keeps_the_last_good_checkpoint(tmp_path):
  directory = str(tmp_path / "checkpoints")
  ckpt = checkpoint.Checkpointer(directory)
  ckpt.save({"w": np.arange(3.0)}, 1)
  ckpt.close()

  def full_disk(src, dst):
    raise no_space(src)

  ckpt = checkpoint.Checkpointer(directory)
  with mock.patch("os.rename", full_disk), pytest.raises(OSError) as raised:
    ckpt.save({"w": np.ones(3)}, 2)
    ckpt.close()
  assert errors.user_error_of(raised.value) is not None
  ckpt = checkpoint.Checkpointer(directory)  # The lock was released: no wait, no deadlock.
  assert ckpt.latest_step() == 1
  np.testing.assert_array_equal(ckpt.restore({"w": np.zeros(3)})["w"], np.arange(3.0))
  ckpt.close()


# Runs dmr.main with every write of results.json failing as on a full disk.
FULL_DISK_MAIN = """
import errno, os, sys
replace = os.replace
def full(src, dst):
  if str(dst).endswith("results.json"):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), dst)
  return replace(src, dst)
os.replace = full
from dmr import main
sys.argv = ["dmr.main"] + sys.argv[1:]
main.run()
"""


@pytest.mark.skipif(not fashion_mnist.has_local_files(), reason="needs dataset-fashion-mnist")
def test_disk_full_stops_with_one_line_and_keeps_results(tmp_path):
  workdir = str(tmp_path)
  run_main(workdir, *CLASSIFIERS_ONLY, "--config.training_sizes=(100,)")
  before = (tmp_path / "results.json").read_bytes()
  out = subprocess.run([sys.executable, "-c", FULL_DISK_MAIN,
                        *main_command(workdir, *CLASSIFIERS_ONLY,
                                      "--config.training_sizes=(100,150)")[3:]],
                       cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600)
  assert out.returncode == 2 and "Traceback" not in out.stderr
  assert f"error: cannot write {workdir}/results.json: No space left on device." in out.stderr
  assert (tmp_path / "results.json").read_bytes() == before
  assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]


def test_unwritable_workdir_is_refused_before_any_work(tmp_path):
  from dmr import plan
  unit = plan.Unit("classifiers", "normal n=100 seed=0", ("data",), False, 2, 10**8)

  def read_only(*args, **kwargs):
    raise OSError(errno.EROFS, os.strerror(errno.EROFS))

  with mock.patch("tempfile.NamedTemporaryFile", read_only), \
      pytest.raises(errors.UserError, match="is not writable \\(Read-only file system\\)"):
    plan.check_workdir([unit], str(tmp_path))
  with mock.patch("shutil.disk_usage", lambda path: mock.Mock(free=10**5)), \
      pytest.raises(errors.UserError, match="need about 100.0 MB but .* has 0.1 MB free"):
    plan.check_workdir([unit], str(tmp_path))
  with mock.patch("shutil.disk_usage", lambda path: mock.Mock(free=10**5)):
    plan.check_workdir([dataclasses.replace(unit, finished=True)], str(tmp_path))
