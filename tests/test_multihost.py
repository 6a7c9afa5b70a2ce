"""Multi-host: 2 processes on 127.0.0.1 (gloo collectives) train the same model as 1 process."""
import socket
import subprocess

import jax
import numpy as np

from dmr import results
from tests.helpers import CLASSIFIERS_ONLY, REPO, final_state, main_command, run_main, subprocess_env
from tests.test_checkpoint import smoke_config

# 300 examples, batch 100, 1 epoch: 3 steps.
OVERRIDES = CLASSIFIERS_ONLY + ("--config.training_sizes=(300,)", "--config.train.epochs=1")


def free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_end_with_the_params_of_one(tmp_path):
  single, multi = str(tmp_path / "single"), str(tmp_path / "multi")
  run_main(single, *OVERRIDES)
  port = free_port()
  procs = [
      subprocess.Popen(
          main_command(multi, *OVERRIDES, "--config.parallel.distributed=True",
                       f"--config.parallel.coordinator_address=127.0.0.1:{port}",
                       "--config.parallel.num_processes=2", f"--config.parallel.process_id={i}"),
          cwd=REPO, env=subprocess_env(devices=2), stdout=subprocess.PIPE,
          stderr=subprocess.STDOUT, text=True)
      for i in range(2)
  ]
  outputs = [p.communicate(timeout=300)[0] for p in procs]
  assert [p.returncode for p in procs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
  assert "devices: 4 (2 processes)" in outputs[0]

  config = smoke_config()
  config.train.epochs = 1; config.training_sizes = (300,)
  a = final_state(single, "normal", 300, 0, config)
  b = final_state(multi, "normal", 300, 0, config)
  assert int(a.step) == int(b.step) == 3
  # Float tolerance: the reductions run in another order. Adam's update g / sqrt(v) turns
  # rounding in near-zero gradients (e.g. of a nearly dead ReLU channel) into lr-sized steps, so
  # a few coordinates may differ by up to a few steps of lr 0.01; all others agree to 1e-4.
  a_flat = np.concatenate([u.ravel() for u in jax.tree.leaves(a.params)])
  b_flat = np.concatenate([v.ravel() for v in jax.tree.leaves(b.params)])
  close = np.abs(a_flat - b_flat) <= 1e-4
  assert close.mean() >= 0.999, f"{(~close).sum()} of {close.size} params differ"
  assert np.abs(a_flat - b_flat).max() <= 3 * config.train.learning_rate
  error_single = results.find_record(single, "normal", 300, 0)["test_error"]
  error_multi = results.find_record(multi, "normal", 300, 0)["test_error"]
  assert abs(error_single - error_multi) <= 0.002
