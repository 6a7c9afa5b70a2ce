"""Shared config defaults, presets and validation. configs/<dataset>.py build on `base`.

Presets: `paper` (PAPER.md's protocol), `quick` (every stage at reduced size, minutes on a
2-core CPU) and `smoke` (seconds, for tests).
"""
from __future__ import annotations

import ml_collections

from dmr import data

PRESETS = ("paper", "quick", "smoke")
STAGES = ("classifiers",)
VARIANTS = ("normal",)
PAPER_TRAINING_SIZES = (250, 500, 1000, 1500, 2000, 2500, 5000, 7500, 10000, 15000, 20000, 30000,
                        40000)


def base(dataset: str, preset: str) -> ml_collections.ConfigDict:
  """PAPER.md's protocol for `dataset`, reduced for the `quick` and `smoke` presets."""
  if preset not in PRESETS:
    raise ValueError(f"preset={preset!r}; allowed: {PRESETS}.")
  c = ml_collections.ConfigDict()
  c.dataset = dataset
  c.preset = preset
  c.seed = 0
  c.stages = STAGES
  c.training_sizes = PAPER_TRAINING_SIZES
  c.models_per_size = 3
  c.variants = VARIANTS

  c.data = ml_collections.ConfigDict()
  c.data.dir = ml_collections.FieldReference(None, field_type=str)  # None: the source's default.

  c.classifier = ml_collections.ConfigDict()
  c.classifier.architecture = "conv"

  c.train = ml_collections.ConfigDict()
  c.train.epochs = 20
  c.train.batch_size = 100
  c.train.learning_rate = 0.01
  c.train.lr_decay = 0.95  # Per epoch, applied continuously every batch.
  c.train.b1 = 0.5
  c.train.b2 = 0.9
  c.train.weight_decay = 1e-4  # Coupled L2 on all parameters (PyTorch Adam's weight_decay).
  c.train.eval_batch_size = 1000
  c.train.checkpoint_every_steps = 500
  c.train.log_every_steps = 50

  c.parallel = ml_collections.ConfigDict()
  c.parallel.distributed = False  # True: jax.distributed.initialize() (Slurm/TPU auto-detected).
  c.parallel.coordinator_address = ml_collections.FieldReference(None, field_type=str)
  c.parallel.num_processes = ml_collections.FieldReference(None, field_type=int)
  c.parallel.process_id = ml_collections.FieldReference(None, field_type=int)

  if preset == "quick":
    c.training_sizes = (1000, 5000)
    c.models_per_size = 1
    c.train.epochs = 10
  elif preset == "smoke":
    c.training_sizes = (200,)
    c.models_per_size = 1
    c.train.epochs = 1
    c.train.checkpoint_every_steps = 1
    c.train.log_every_steps = 1
  return c


def _fail(field: str, value, allowed: str) -> None:
  raise ValueError(f"config.{field}={value!r} is invalid; allowed: {allowed}.")


def validate(c: ml_collections.ConfigDict, train_size: int | None = None) -> None:
  """Raises ValueError naming the field and its allowed values for every invalid setting.

  train_size: the size of the dataset's training set (default: the known size of c.dataset).
  """
  if c.dataset not in data.DATASETS:
    _fail("dataset", c.dataset, str(data.DATASETS))
  train_size = train_size or data.TRAIN_SIZES.get(c.dataset)
  for stage in c.stages:
    if stage not in STAGES:
      _fail("stages", tuple(c.stages), f"a tuple of {STAGES}")
  for variant in c.variants:
    if variant not in VARIANTS:
      _fail("variants", tuple(c.variants), f"a tuple of {VARIANTS}")
  if not c.training_sizes:
    _fail("training_sizes", c.training_sizes, "a non-empty tuple of positive integers")
  for n in c.training_sizes:
    if not isinstance(n, int) or n <= 0:
      _fail("training_sizes", tuple(c.training_sizes), "positive integers")
    if train_size and n > train_size:
      _fail("training_sizes", tuple(c.training_sizes),
            f"sizes up to {train_size}, the size of {c.dataset}'s training set")
  for field in ("models_per_size", "train.epochs", "train.batch_size", "train.eval_batch_size",
                "train.checkpoint_every_steps", "train.log_every_steps"):
    value = _get(c, field)
    if not isinstance(value, int) or value <= 0:
      _fail(field, value, "a positive integer")
  for field in ("train.learning_rate", "train.lr_decay", "train.b1", "train.b2"):
    value = _get(c, field)
    if not 0 < value <= (1 if field != "train.learning_rate" else float("inf")):
      _fail(field, value, "a number in (0, 1]" if field != "train.learning_rate" else "> 0")
  if c.train.weight_decay < 0:
    _fail("train.weight_decay", c.train.weight_decay, ">= 0")
  from dmr.models.classifiers import ARCHITECTURES
  if c.classifier.architecture not in ARCHITECTURES:
    _fail("classifier.architecture", c.classifier.architecture, str(sorted(ARCHITECTURES)))


def _get(c: ml_collections.ConfigDict, dotted: str):
  for part in dotted.split("."):
    c = c[part]
  return c
