"""Batch sizes and memory per device of the programs a paper-preset run compiles.

  python benchmarks/memory.py [--datasets fashion,emnist,fonts,celeba] [--preset paper]

Each program is compiled (never run) on abstract arguments (jax.ShapeDtypeStruct, nothing
allocated) for jax.devices()[0], and XLA's memory analysis of the compiled program is reported:
arguments, outputs, aliased (outputs written into donated arguments), temporaries and the peak
estimate arguments + outputs - aliased + temporaries. Sizes and settings come from
configs/<dataset>.py's get_config(preset). Per dataset (and for claim 4's own family when
config.claim4.architecture is set): the classifier train step (`normal`, state donated as
dmr.train.loop jits it), the off_adv train step (the training attack on its second half), the
evaluation attack on attack.batch_size images x attack.restarts restarts; and the VAE-GAN
train step when the learned manifold is used. on_adv_* (trained VAE-GANs or rendered fonts) and
the cross-check attacks are not covered. One device holds the whole batch: with data
parallelism over D devices the batch rows, outputs and most temporaries shrink about D-fold.
"""
from __future__ import annotations

import argparse
import importlib.util
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from dmr import attacks  # noqa: E402
from dmr import config as dmr_config  # noqa: E402
from dmr import specs  # noqa: E402
from dmr.data import fonts  # noqa: E402
from dmr.data.dataset import num_batches  # noqa: E402
from dmr.manifolds import vaegans  # noqa: E402
from dmr.train import classifier, optim, steps, variants  # noqa: E402
from dmr.train import vaegan as vaegan_training  # noqa: E402

CONFIGS = ("fashion", "emnist", "fonts", "celeba")
# (image shape, classes) of the images dmr.data's loaders return (no data is read here):
# celeb_a.resize_and_crop gives 56x48x3, Male or not.
SHAPES = {"fashion_mnist": ((28, 28, 1), 10), "emnist": ((28, 28, 1), 10),
          "celeb_a": ((56, 48, 3), 2),
          "fonts": ((fonts.IMAGE_SIZE, fonts.IMAGE_SIZE, 1), len(fonts.LETTERS))}
MIB = 2**20


def get_config(name: str, preset: str):
  """configs/<name>.py's get_config(preset)."""
  spec = importlib.util.spec_from_file_location(name, REPO / "configs" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(preset)


def abstract(shape, dtype=jnp.float32) -> jax.ShapeDtypeStruct:
  return jax.ShapeDtypeStruct(tuple(shape), dtype)


KEY = jax.eval_shape(jax.random.key, 0)


def batch_args(batch: int, image_shape) -> tuple:
  """Abstract (x, y, weight, key) of a training batch."""
  return (abstract((batch,) + image_shape), abstract((batch,), jnp.int32), abstract((batch,)), KEY)


def classifier_programs(run: specs.RunSpec, spec: specs.ClassifierSpec, image_shape,
                        num_classes, prefix: str) -> list[tuple]:
  """(name, rows, jitted fn, abstract args) of a classifier family's train steps and attack."""
  t, a = spec.train, run.attacks
  model = classifier.make_model(spec.architecture, num_classes)
  largest = max(n for _, sizes in run.sizes_of for n in sizes)
  tx = optim.paper_adam(t.learning_rate, t.lr_decay, num_batches(largest, t.batch_size), t.b1,
                        t.b2, t.weight_decay)
  state = jax.eval_shape(lambda key: steps.init_state(model, tx, key, image_shape), KEY)
  batch = batch_args(t.batch_size, image_shape)
  off_adv = variants.off_manifold(a.training_off)

  def attack(params, batch_stats, x, y, key):
    logits_fn = steps.make_logits_fn(model, params, batch_stats)
    r = attacks.pgd(logits_fn, x, y, key=key, bounds=(0.0, 1.0), **a.off.options())
    return r.x_adv, r.success_per_restart.T

  train = lambda half: jax.jit(steps.make_train_step(model, tx, half, half=t.batch_size // 2),
                               donate_argnums=(0,))
  images = (a.batch_size,) + image_shape
  return [
      (f"{prefix}train normal", str(t.batch_size), train(None), (state, *batch)),
      (f"{prefix}train off_adv", f"{t.batch_size} ({t.batch_size // 2} x "
       f"{a.training_off.steps} steps)", train(off_adv), (state, *batch)),
      (f"{prefix}attack ({a.off.optimizer}, {a.off.steps} steps)",
       f"{a.batch_size}x{a.off.restarts}",
       jax.jit(attack), (state.params, state.batch_stats, abstract(images),
                         abstract(images[:1], jnp.int32), KEY)),
  ]


def vaegan_program(v: specs.VaeganSpec, image_shape) -> tuple:
  nets = vaegans.make_nets(v, image_shape)
  tx = optim.paper_adam(v.learning_rate, v.lr_decay, 1, v.b1, v.b2, v.weight_decay)
  state = jax.eval_shape(lambda key: vaegan_training.init_state(nets, tx, key, image_shape), KEY)
  step = vaegan_training.make_train_step(nets, tx, v.beta, v.gamma)
  return (f"vaegan train (width {v.channels}, d={v.latent_dim})", str(v.batch_size),
          jax.jit(step, donate_argnums=(0,)), (state, *batch_args(v.batch_size, image_shape)))


def programs(c) -> list[tuple]:
  """(name, rows, jitted fn, abstract args) of every program the module docstring lists."""
  image_shape, num_classes = SHAPES[c.dataset]
  run = specs.RunSpec.from_config(c)
  found = classifier_programs(run, run.classifier, image_shape, num_classes, "")
  if run.claim4 is not None:
    found += classifier_programs(run, run.claim4, image_shape, num_classes,
                                 f"claim4 {run.claim4.architecture} ")
  if "learned" in run.manifolds:
    found.append(vaegan_program(run.vaegan, image_shape))
  return found


def memory(fn, args) -> tuple[dict, float]:
  """(XLA's memory analysis of fn compiled for args, in bytes; compile seconds)."""
  start = time.perf_counter()
  stats = fn.lower(*args).compile().memory_analysis()
  seconds = time.perf_counter() - start
  if stats is None:
    return {}, seconds
  fields = ("argument", "output", "alias", "temp")
  return {f: getattr(stats, f"{f}_size_in_bytes") for f in fields}, seconds


ROW = "{:<14}{:<38}{:>26}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}"


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--datasets", default=",".join(CONFIGS),
                      help=f"comma-separated configs/<name>.py names among {CONFIGS}")
  parser.add_argument("--preset", default="paper", choices=dmr_config.PRESETS)
  args = parser.parse_args()
  names = args.datasets.split(",")
  unknown = [n for n in names if n not in CONFIGS]
  if unknown:
    parser.error(f"--datasets {unknown} unknown; allowed: {','.join(CONFIGS)}")
  device = jax.devices()[0]
  print(f"jax {jax.__version__}, backend {jax.default_backend()}, device {device.device_kind}, "
        f"preset {args.preset}; sizes in MiB; peak = arguments + outputs - aliased + temporaries")
  print(ROW.format("dataset", "program", "batch (rows)", "args", "outputs", "aliased", "temps",
                   "peak", "compile s"))
  for name in names:
    c = get_config(name, args.preset)
    for program, rows, fn, fn_args in programs(c):
      m, seconds = memory(fn, fn_args)
      if not m:
        print(ROW.format(name, program, rows, *["n/a"] * 5, f"{seconds:.0f}"), flush=True)
        continue
      peak = m["argument"] + m["output"] - m["alias"] + m["temp"]
      print(ROW.format(name, program, rows, *(f"{b / MIB:.1f}" for b in (
          m["argument"], m["output"], m["alias"], m["temp"], peak)), f"{seconds:.0f}"),
          flush=True)


if __name__ == "__main__":
  main()
