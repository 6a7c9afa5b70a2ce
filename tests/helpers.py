"""Shared test utilities: running dmr.main in a subprocess and reading a model's final state."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import jax

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def get_config(name: str, preset: str | None = None):
  """configs/<name>.py's get_config(preset) (its default preset when None)."""
  spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "configs", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(preset) if preset else module.get_config()


# The foundation's tests train normal classifiers only.
CLASSIFIERS_ONLY = ("--config.stages=('classifiers',)", "--config.variants=('normal',)")


def main_command(workdir: str, *overrides: str, config: str = "configs/fashion.py:smoke") -> list:
  return [sys.executable, "-m", "dmr.main", f"--config={config}", f"--workdir={workdir}",
          *overrides]


def subprocess_env(devices: int = 1, **extra) -> dict:
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", **extra)
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  return env


def run_main(workdir: str, *overrides: str, devices: int = 1,
             config: str = "configs/fashion.py:smoke", **kwargs):
  """Runs dmr.main to completion; on failure the error shows the run's stderr."""
  out = subprocess.run(main_command(workdir, *overrides, config=config), cwd=REPO,
                       env=subprocess_env(devices), capture_output=True, text=True, **kwargs)
  if out.returncode:
    raise AssertionError(f"dmr.main failed ({out.returncode}):\n{out.stderr[-5000:]}")
  return out


def final_state(workdir: str, variant: str, n: int, seed: int, config):
  """The last checkpointed TrainState of model (variant, n, seed) as numpy arrays."""
  from dmr import checkpoint
  from dmr.train import classifier
  from dmr.data.dataset import num_batches
  from dmr.train import optim, steps
  model = classifier.make_model(config.classifier.architecture, 10)
  t = config.train
  tx = optim.paper_adam(t.learning_rate, t.lr_decay, num_batches(n, t.batch_size))
  like = steps.init_state(model, tx, jax.random.key(0), (28, 28, 1))
  ckpt = checkpoint.Checkpointer(os.path.join(classifier.model_dir(workdir, variant, n, seed),
                                              "checkpoints"))
  state = ckpt.restore(like)
  ckpt.close()
  return jax.tree.map(lambda a: jax.device_get(a), state)


# What makes a preset's shape (which models and measurements exist), and fields that change no
# result; every other field is a size.
SHAPE_FIELDS = ("models_per_size", "training_sizes", "variants", "manifolds", "attack.variants")
# train.min_steps: None at smoke scale, which no flag can set; a caller passes its own.
KEPT_FIELDS = SHAPE_FIELDS + ("preset", "train.checkpoint_every_steps", "train.log_every_steps",
                              "vaegan.checkpoint_every_steps", "vaegan.log_every_steps",
                              "train.min_steps")


def smoke_sized(name: str, preset: str) -> list[str]:
  """Command-line overrides giving configs/<name>.py:<preset> the sizes of its smoke preset
  (epochs, images, steps, widths) and keeping its shape (SHAPE_FIELDS), its checkpoint and
  log intervals and its train.min_steps: training sizes become 100, 200, ..., one per size of
  the preset, and so do the sizes of its variant_training_sizes."""
  from dmr import fingerprint
  shaped, smoke = get_config(name, preset), get_config(name, "smoke")
  sizes = tuple(100 * (i + 1) for i in range(len(shaped.training_sizes)))
  overrides = [f"--config.training_sizes={sizes}"]
  smoke_n = dict(zip(shaped.training_sizes, sizes))
  for variant, only in shaped.variant_training_sizes.items():  # Same shape at the smoke sizes.
    if only is not None:
      overrides.append(f"--config.variant_training_sizes.{variant}="
                       f"{tuple(smoke_n[n] for n in only if n in smoke_n)}")
  flat = lambda c: {k: v for k, v in fingerprint.flat_fields(c).items()
                    if k not in KEPT_FIELDS and not k.startswith("variant_training_sizes.")}
  smoke_values = flat(smoke)
  for field, value in flat(shaped).items():
    if field in smoke_values and smoke_values[field] != value:
      value = smoke_values[field]
      overrides.append(f"--config.{field}={value if isinstance(value, str) else repr(value)}")
  return overrides
