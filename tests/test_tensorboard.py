"""TensorBoard event files of training runs, read back with TensorBoard's own reader; progress."""
import io
import os
import shutil

import jax
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from dmr import parallel, progress, specs, tensorboard
from dmr.data.dataset import Dataset, num_batches
from dmr.models import vaegan as vaegan_models
from dmr.train import classifier, loop, optim, steps
from dmr.train import vaegan as vaegan_training
from configs import fashion

N, BATCH = 48, 16  # 3 steps per epoch


def one_device_mesh():
  """Training on one device compiles faster; the sharded paths are tested elsewhere."""
  return jax.sharding.Mesh(np.asarray(jax.devices()[:1]), (parallel.AXIS,))


def reader(directory: str) -> event_accumulator.EventAccumulator:
  acc = event_accumulator.EventAccumulator(directory, size_guidance={"images": 0})
  acc.Reload()
  return acc


def scalar_series(acc, tag: str) -> tuple[list, list]:
  events = acc.Scalars(tag)
  return [e.step for e in events], [e.value for e in events]


@pytest.fixture(scope="module")
def smoke():
  """The smoke config, a tiny Fashion-MNIST-shaped dataset of random images, and the smoke
  classifier's initial state and train step (one step function: the tests share its compilation)."""
  config = fashion.get_config("smoke")
  rng = np.random.default_rng(0)
  ds = Dataset(name="random", x_train=rng.uniform(size=(N, 28, 28, 1)).astype(np.float32),
               y_train=rng.integers(0, 10, N).astype(np.int32),
               x_test=rng.uniform(size=(8, 28, 28, 1)).astype(np.float32),
               y_test=rng.integers(0, 10, 8).astype(np.int32), num_classes=10)
  model, tx, state = classifier.initial_state(specs.RunSpec.from_config(config).classifier, ds, N,
                                              jax.random.key(0))
  # On the host: run_epochs donates the device copy it trains.
  return config, ds, jax.device_get(state), steps.make_train_step(model, tx)


def train_classifier(smoke, workdir):
  """Trains (or resumes) the smoke classifier for 2 epochs with run_epochs into
  workdir/models/normal/n48/seed0; returns that directory and the learning-rate schedule."""
  config, ds, state, train_step = smoke
  t = config.train
  schedule = optim.paper_schedule(t.learning_rate, t.lr_decay, num_batches(N, BATCH))
  model_dir = classifier.model_dir(workdir, "normal", N, 0)
  loop.run_epochs(train_step, state, ds.x_train, ds.y_train, epochs=2, batch_size=BATCH, seed=0,
                  workdir=model_dir, mesh=one_device_mesh(), checkpoint_every_steps=100,
                  log_every_steps=1, tensorboard_dir=tensorboard.run_dir(workdir, model_dir),
                  learning_rate=schedule)
  return model_dir, schedule


def test_classifier_training_scalars_equal_its_metrics_file(smoke, tmp_path):
  config = smoke[0]
  model_dir, schedule = train_classifier(smoke, str(tmp_path))
  acc = reader(str(tmp_path / "tensorboard" / "models" / "normal" / "n48" / "seed0"))
  assert set(acc.Tags()["scalars"]) == {"train/loss", "train/train_error",
                                        "train/learning_rate"}
  records = loop.read_metrics(os.path.join(model_dir, "metrics.jsonl"))
  for key in ("loss", "train_error"):
    got_steps, values = scalar_series(acc, f"train/{key}")
    assert got_steps == [r["step"] for r in records] == list(range(1, 7))
    np.testing.assert_array_equal(values, np.float32([r[key] for r in records]))
  _, rates = scalar_series(acc, "train/learning_rate")
  # Step s logs the rate of its own update, the schedule at update count s - 1.
  np.testing.assert_allclose(rates, [float(schedule(s)) for s in range(6)], rtol=1e-6)
  assert rates[0] == np.float32(config.train.learning_rate)


def test_a_resumed_run_shows_each_step_once(smoke, tmp_path):
  model_dir, _ = train_classifier(smoke, str(tmp_path))
  first = loop.read_metrics(os.path.join(model_dir, "metrics.jsonl"))
  shutil.rmtree(os.path.join(model_dir, "checkpoints", "6"))  # Back to the end of epoch 1.
  train_classifier(smoke, str(tmp_path))
  acc = reader(tensorboard.run_dir(str(tmp_path), model_dir))
  got_steps, losses = scalar_series(acc, "train/loss")
  assert got_steps == list(range(1, 7))
  np.testing.assert_array_equal(losses, np.float32([r["loss"] for r in first]))


def test_a_finished_run_writes_no_new_events(smoke, tmp_path):
  model_dir, _ = train_classifier(smoke, str(tmp_path))
  run = tensorboard.run_dir(str(tmp_path), model_dir)
  files = sorted(os.listdir(run))
  train_classifier(smoke, str(tmp_path))  # Restores the finished model only.
  assert sorted(os.listdir(run)) == files
  assert scalar_series(reader(run), "train/loss")[0] == list(range(1, 7))


def test_vaegan_training_logs_its_losses_and_discriminator_accuracy(smoke, tmp_path):
  ds = smoke[1]
  nets = vaegan_models.make_vaegan(ds.image_shape, 4, 4, 4)
  tx = optim.paper_adam(0.005, 0.9, 3)
  state = vaegan_training.init_state(nets, tx, jax.random.key(0), ds.image_shape)
  model_dir = os.path.join(tmp_path, "manifolds", "0")
  loop.run_epochs(vaegan_training.make_train_step(nets, tx, 3.0, 1.0), state, ds.x_train,
                  ds.y_train, epochs=1, batch_size=BATCH, seed=0, workdir=model_dir,
                  mesh=one_device_mesh(), checkpoint_every_steps=100, log_every_steps=1,
                  tensorboard_dir=tensorboard.run_dir(str(tmp_path), model_dir))
  acc = reader(str(tmp_path / "tensorboard" / "manifolds" / "0"))
  assert set(acc.Tags()["scalars"]) == {f"train/{k}" for k in (
      "loss", "kl", "l1", "gan", "discriminator", "discriminator_accuracy")}
  records = loop.read_metrics(os.path.join(model_dir, "metrics.jsonl"))
  _, accuracy = scalar_series(acc, "train/discriminator_accuracy")
  np.testing.assert_array_equal(accuracy,
                                np.float32([r["discriminator_accuracy"] for r in records]))


def test_write_images_adds_one_grid_per_tag_to_the_model_run(tmp_path):
  model_dir = os.path.join(tmp_path, "models", "normal", "n100", "seed0")
  images = {"attacks/off_manifold": np.full((3, 28, 28, 1), 0.5, np.float32),
            "attacks/test": np.zeros((3, 28, 28, 1), np.float32)}
  tensorboard.write_images(str(tmp_path), model_dir, images, step=7)
  acc = reader(tensorboard.run_dir(str(tmp_path), model_dir))
  assert set(acc.Tags()["images"]) == set(images)
  (event,) = acc.Images("attacks/off_manifold")
  assert event.step == 7 and event.height == 28 and event.width >= 3 * 28


def test_writers_opened_within_one_second_keep_each_others_events(tmp_path):
  for step in (1, 2, 3):
    with tensorboard.Writer(str(tmp_path)) as writer:
      writer.scalars(step, {"loss": float(step)})
  assert scalar_series(reader(str(tmp_path)), "train/loss") == ([1, 2, 3], [1.0, 2.0, 3.0])


def test_only_process_zero_writes(tmp_path, monkeypatch):
  monkeypatch.setattr(jax, "process_index", lambda: 1)
  with tensorboard.Writer(str(tmp_path / "run")) as writer:
    writer.scalars(1, {"loss": 1.0})
    writer.images(1, {"x": np.zeros((1, 4, 4, 1))})
  assert not os.path.exists(tmp_path / "run")


def test_run_dir_rejects_a_model_outside_the_workdir(tmp_path):
  with pytest.raises(ValueError, match="is not inside the workdir"):
    tensorboard.run_dir(str(tmp_path / "run"), str(tmp_path / "elsewhere"))


class FakeTerminal(io.StringIO):
  def isatty(self) -> bool:
    return True


@pytest.mark.parametrize("enabled", [True, False])
def test_map_in_batches_shows_rows_done_on_a_terminal_unless_turned_off(enabled, monkeypatch):
  terminal = FakeTerminal()
  monkeypatch.setattr("sys.stderr", terminal)
  monkeypatch.setattr(progress, "_enabled", True)
  progress.set_enabled(enabled)
  x = np.arange(10.0)
  out = parallel.map_in_batches(jax.jit(lambda a: 2 * a), (x,), 8, parallel.data_mesh(),
                                desc="attack normal")
  np.testing.assert_array_equal(out, 2 * x)
  shown = terminal.getvalue()
  assert ("attack normal" in shown and "/10 [" in shown) == enabled
  assert enabled or shown == ""


def test_no_bar_without_desc_or_off_a_terminal(monkeypatch):
  terminal = FakeTerminal()
  monkeypatch.setattr("sys.stderr", terminal)
  parallel.map_in_batches(jax.jit(lambda a: a), (np.arange(4.0),), 8, parallel.data_mesh())
  assert terminal.getvalue() == ""
  monkeypatch.setattr("sys.stderr", io.StringIO())  # A log file: not a terminal.
  assert progress.bar(4, "attack", "row").disable
