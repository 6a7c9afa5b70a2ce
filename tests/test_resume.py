"""Resume mid-epoch: a run stopped after a checkpoint that does not fall on an epoch boundary and
restarted ends bit for bit where an uninterrupted run ends, for classifiers and VAE-GANs."""
import jax
import numpy as np
import pytest

from dmr import checkpoint, parallel
from dmr.specs import RunSpec
from dmr.manifolds import vaegans
from dmr.train import classifier, loop, steps
from dmr.train import vaegan as vaegan_training
from dmr.data.dataset import Dataset
from tests.test_config import get_config

ROWS, BATCH, EPOCHS, EVERY = 50, 10, 2, 3  # 5 steps per epoch, checkpoints at 3, 5, 6, 9, 10.


class Interrupted(Exception):
  """Stands for a kill: raised while the loop reads the batch after `after` batches."""


class StopsAfter:
  """x [N, ...] whose batch reads fail after `after` reads (a run killed there)."""

  def __init__(self, x: np.ndarray, after: int):
    self.x, self.after, self.reads = x, after, 0

  def __len__(self):
    return len(self.x)

  def __getitem__(self, rows):
    if self.reads == self.after:
      raise Interrupted
    self.reads += 1
    return self.x[rows]


def data():
  rng = np.random.default_rng(0)
  return (rng.uniform(size=(ROWS, 28, 28, 1)).astype(np.float32),
          rng.integers(0, 10, ROWS).astype(np.int32))


def train(train_step, state, x, y, workdir):
  return loop.run_epochs(train_step, state, x, y, epochs=EPOCHS, batch_size=BATCH, seed=3,
                         workdir=workdir, mesh=parallel.data_mesh(), checkpoint_every_steps=EVERY,
                         log_every_steps=1)


def assert_resume_is_exact(train_step, initial, tmp_path, stop_after: int, resumed_from: int):
  x, y = data()
  reference = jax.device_get(train(train_step, initial(), x, y, str(tmp_path / "reference")))
  stopped = str(tmp_path / "stopped")
  with pytest.raises(Interrupted):
    train(train_step, initial(), StopsAfter(x, stop_after), y, stopped)
  ckpt = checkpoint.Checkpointer(f"{stopped}/checkpoints")
  assert ckpt.latest_step() == resumed_from
  ckpt.close()
  resumed = jax.device_get(train(train_step, initial(), x, y, stopped))
  assert int(resumed.step) == int(reference.step) == EPOCHS * ROWS // BATCH
  jax.tree.map(np.testing.assert_array_equal, resumed.params, reference.params)
  jax.tree.map(np.testing.assert_array_equal, resumed.batch_stats, reference.batch_stats)
  jax.tree.map(np.testing.assert_array_equal, resumed.opt_state, reference.opt_state)
  steps_logged = [r["step"] for r in loop.read_metrics(f"{stopped}/metrics.jsonl")]
  assert steps_logged == list(range(1, EPOCHS * ROWS // BATCH + 1))


def test_classifier_resumes_mid_epoch_bit_for_bit(tmp_path):
  spec = RunSpec.from_config(get_config("fashion", "smoke")).classifier
  x, y = data()
  ds = Dataset("synthetic", x, y, x, y, num_classes=10)
  model, tx, _ = classifier.initial_state(spec, ds, ROWS, jax.random.key(0))
  initial = lambda: classifier.initial_state(spec, ds, ROWS, jax.random.key(1))[2]
  # Stopped while reading batch 5 of epoch 0: the last checkpoint is step 3, mid-epoch.
  assert_resume_is_exact(steps.make_train_step(model, tx), initial, tmp_path, stop_after=4,
                         resumed_from=3)


def test_vaegan_resumes_mid_epoch_bit_for_bit(tmp_path):
  spec = RunSpec.from_config(get_config("fashion", "smoke")).vaegan
  nets = vaegans.make_nets(spec, (28, 28, 1))
  tx, train_step = vaegans.optimizer_and_step(spec, nets, vaegans.AGNOSTIC, ROWS)
  initial = lambda: vaegan_training.init_state(nets, tx, jax.random.key(1), (28, 28, 1))
  # Stopped while reading batch 3 of epoch 1: the last checkpoint is step 6, mid-epoch.
  assert_resume_is_exact(train_step, initial, tmp_path, stop_after=7, resumed_from=6)
