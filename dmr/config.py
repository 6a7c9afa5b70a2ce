"""Shared config defaults, presets and validation. configs/<dataset>.py build on `base`.

Presets: `paper` (PAPER.md's protocol), `quick` (every stage at reduced size, minutes on a
2-core CPU) and `smoke` (seconds, for tests).
"""
from __future__ import annotations

import ml_collections

from dmr import data

PRESETS = ("paper", "quick", "smoke")
# In run order: on_adv_learned training needs the VAE-GANs of `manifolds`.
STAGES = ("manifolds", "classifiers", "attacks", "distances", "report")
VARIANTS = ("normal", "off_adv", "on_adv_learned", "on_adv_true", "stn_augm", "stn_adv")
PAPER_VARIANTS = ("normal", "off_adv", "on_adv_learned", "stn_augm", "stn_adv")
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
  c.variants = PAPER_VARIANTS

  c.data = ml_collections.ConfigDict()
  c.data.dir = placeholder(str)  # None: the source's default.

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

  # Adversarial training (off_adv, on_adv_*, stn_adv): the paper's attack, all steps, keeping the
  # highest-loss iterate, in eval mode. eps: image-space L-inf (off_adv), latent / theta L-inf
  # (on_adv_*), theta L-inf around the identity (stn_adv).
  c.adversarial_training = ml_collections.ConfigDict()
  c.adversarial_training.off_eps = 0.3
  c.adversarial_training.on_eps = 0.3
  c.adversarial_training.stn_eps = 0.3
  c.adversarial_training.steps = 40
  c.adversarial_training.step_size = 0.005
  c.adversarial_training.optimizer = "adam"
  c.adversarial_training.init = "paper"

  # Off-manifold (regular) evaluation attack: L-inf eps 0.3 on the first num_test test images.
  c.attack = ml_collections.ConfigDict()
  c.attack.eps = 0.3
  c.attack.norm = "linf"
  c.attack.steps = 40
  c.attack.step_size = 0.005
  c.attack.optimizer = "adam"
  c.attack.init = "paper"
  c.attack.restarts = 5
  c.attack.num_test = 1000
  c.attack.batch_size = 500

  # On-manifold evaluation attack: L-inf eps in the latent space of the true class's VAE-GAN
  # (eps_agnostic for the class-agnostic one) or in theta space on FONTS.
  c.on_manifold_attack = ml_collections.ConfigDict()
  c.on_manifold_attack.eps = 0.3
  c.on_manifold_attack.eps_agnostic = 0.1
  c.on_manifold_attack.steps = 40
  c.on_manifold_attack.step_size = 0.005
  c.on_manifold_attack.optimizer = "adam"
  c.on_manifold_attack.init = "paper"
  c.on_manifold_attack.restarts = 5
  c.on_manifold_attack.num_test = 2500
  c.on_manifold_attack.batch_size = 500

  # Claim 1: distances of test images and adversarial examples to the manifold.
  c.distances = ml_collections.ConfigDict()
  c.distances.num_test = 1000
  c.distances.projection_steps = 100
  c.distances.projection_lr = 0.1
  c.distances.projection_restarts = 1
  c.distances.neighbours = 50
  c.distances.pca_dims = 40

  # --- VAE-GANs of the learned manifold (PAPER.md, "VAE-GAN"; stage `manifolds`) -------------
  # One per class and one class-agnostic, each on the FULL training set of its class (the first
  # max_train_images rows of it when set). Per-dataset values: `vaegan_defaults` below.
  c.vaegan = ml_collections.ConfigDict()
  c.vaegan.latent_dim = 10
  c.vaegan.epochs = 30
  c.vaegan.beta = 3.0  # Weight of the L1 reconstruction loss, class-specific models.
  c.vaegan.beta_agnostic = 3.0  # The same for the class-agnostic model.
  c.vaegan.gamma = 1.0  # Weight of the GAN losses.
  c.vaegan.learning_rate = 0.005
  c.vaegan.lr_decay = 0.9  # Per epoch, applied continuously every batch.
  c.vaegan.b1 = 0.5
  c.vaegan.b2 = 0.9
  c.vaegan.weight_decay = 1e-4  # Coupled L2, as train.weight_decay.
  c.vaegan.batch_size = 100
  c.vaegan.channels = 64  # First conv of encoder (doubling) and last of decoder.
  c.vaegan.discriminator_channels = 64
  c.vaegan.max_train_images = placeholder(int)  # None: all.
  c.vaegan.eval_batch_size = 1000
  c.vaegan.checkpoint_every_steps = 500
  c.vaegan.log_every_steps = 50
  # --- end VAE-GANs ---------------------------------------------------------------------------

  c.parallel = ml_collections.ConfigDict()
  c.parallel.distributed = False  # True: jax.distributed.initialize() (Slurm/TPU auto-detected).
  c.parallel.coordinator_address = placeholder(str)
  c.parallel.num_processes = placeholder(int)
  c.parallel.process_id = placeholder(int)

  if preset == "quick":
    c.models_per_size = 1
    c.train.epochs = 10
    # The 11 Fashion-MNIST VAE-GANs in about 2-3 minutes on a 2-core CPU (measured), reconstructions
    # still recognizable: a quarter of the width, the first 3000 images of each class, 2 epochs.
    c.vaegan.epochs = 2
    c.vaegan.channels = c.vaegan.discriminator_channels = 16
    c.vaegan.max_train_images = 3000
  elif preset == "smoke":
    c.training_sizes = (200,)
    c.models_per_size = 1
    c.train.epochs = 1
    c.train.checkpoint_every_steps = 1
    c.train.log_every_steps = 1
    c.vaegan.epochs = 1
    c.vaegan.channels = c.vaegan.discriminator_channels = 4
    c.vaegan.max_train_images = 200
    c.vaegan.eval_batch_size = 500
    c.vaegan.checkpoint_every_steps = 1
    c.vaegan.log_every_steps = 1
  _reduce_experiments(c, preset)
  return c


def _reduce_experiments(c: ml_collections.ConfigDict, preset: str) -> None:
  """The quick and smoke presets of the paper's experiments (all stages, fewer and smaller)."""
  if preset == "paper":
    return
  c.variants = ("normal", "off_adv", "on_adv_learned")
  if preset == "quick":
    # Small N is where on-manifold training should help; 10 attack steps per training batch
    # (the paper: 40) keep adversarial training within the demo's 15 minutes on 2 CPU cores.
    c.training_sizes = (500, 2000)
    c.adversarial_training.steps = 10
    c.attack.num_test = c.on_manifold_attack.num_test = 500
    c.attack.restarts = c.on_manifold_attack.restarts = 2
    c.distances.num_test = 250
  else:
    c.adversarial_training.steps = c.attack.steps = c.on_manifold_attack.steps = 3
    c.attack.num_test = c.on_manifold_attack.num_test = c.distances.num_test = 40
    c.attack.restarts = c.on_manifold_attack.restarts = 2
    c.attack.batch_size = c.on_manifold_attack.batch_size = 40
    c.distances.projection_steps = 5


def vaegan_defaults(c: ml_collections.ConfigDict, *, latent_dim: int, epochs: int,
                    beta: float, beta_agnostic: float | None = None,
                    gamma: float = 1.0) -> None:
  """Sets a dataset's VAE-GAN hyperparameters from PAPER.md's table (configs/<dataset>.py).

  beta_agnostic defaults to beta. `epochs` applies to the paper preset only: quick and smoke
  keep their reduced epochs.
  """
  c.vaegan.latent_dim = latent_dim
  c.vaegan.beta = beta
  c.vaegan.beta_agnostic = beta if beta_agnostic is None else beta_agnostic
  c.vaegan.gamma = gamma
  if c.preset == "paper":
    c.vaegan.epochs = epochs


def placeholder(field_type: type) -> ml_collections.FieldReference:
  """A field that is None by default and takes `field_type` values from overrides."""
  return ml_collections.FieldReference(None, field_type=field_type)


def _fail(field: str, value, allowed: str) -> None:
  raise ValueError(f"config.{field}={value!r} is invalid; allowed: {allowed}.")


def validate(c: ml_collections.ConfigDict, train_size: int | None = None) -> None:
  """Raises ValueError naming the field and its allowed values for every invalid setting.

  train_size: the size of the dataset's training set (default: the known size of c.dataset).
  """
  if c.dataset not in data.DATASETS:
    _fail("dataset", c.dataset, str(data.DATASETS))
  train_size = train_size or (c.data.num_train if c.dataset == "fonts"
                              else data.TRAIN_SIZES.get(c.dataset))
  for stage in c.stages:
    if stage not in STAGES:
      _fail("stages", tuple(c.stages), f"a tuple of {STAGES}")
  for variant in c.variants:
    if variant not in VARIANTS:
      _fail("variants", tuple(c.variants), f"a tuple of {VARIANTS}")
  if "on_adv_true" in c.variants and c.dataset != "fonts":
    _fail("variants", tuple(c.variants), "on_adv_true only with dataset='fonts' (the known "
          "manifold); use on_adv_learned")
  stages = list(c.stages)
  if stages != sorted(stages, key=STAGES.index):
    _fail("stages", tuple(c.stages), f"stages in the order {STAGES}")
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
  for field in ("attack.steps", "attack.restarts", "attack.num_test", "attack.batch_size",
                "on_manifold_attack.steps", "on_manifold_attack.restarts",
                "on_manifold_attack.num_test", "on_manifold_attack.batch_size",
                "adversarial_training.steps", "distances.num_test", "distances.projection_steps",
                "distances.projection_restarts", "distances.neighbours", "distances.pca_dims"):
    value = _get(c, field)
    if not isinstance(value, int) or value <= 0:
      _fail(field, value, "a positive integer")
  for field in ("attack.eps", "attack.step_size", "on_manifold_attack.eps",
                "on_manifold_attack.eps_agnostic", "on_manifold_attack.step_size",
                "adversarial_training.off_eps", "adversarial_training.on_eps",
                "adversarial_training.stn_eps", "adversarial_training.step_size",
                "distances.projection_lr"):
    value = _get(c, field)
    if not isinstance(value, (int, float)) or not value > 0:
      _fail(field, value, "a number > 0")
  for section in ("attack", "on_manifold_attack", "adversarial_training"):
    for field, allowed in (("optimizer", ("sign", "adam")), ("init", ("uniform", "paper", "zero")),
                           ("norm", ("linf", "l2", "l1"))):
      if field in c[section] and c[section][field] not in allowed:
        _fail(f"{section}.{field}", c[section][field], str(allowed))
  for field in ("train.learning_rate", "train.lr_decay", "train.b1", "train.b2"):
    value = _get(c, field)
    if not 0 < value <= (1 if field != "train.learning_rate" else float("inf")):
      _fail(field, value, "a number in (0, 1]" if field != "train.learning_rate" else "> 0")
  if c.train.weight_decay < 0:
    _fail("train.weight_decay", c.train.weight_decay, ">= 0")
  for field in ("vaegan.latent_dim", "vaegan.epochs", "vaegan.batch_size", "vaegan.channels",
                "vaegan.discriminator_channels", "vaegan.eval_batch_size",
                "vaegan.checkpoint_every_steps", "vaegan.log_every_steps"):
    value = _get(c, field)
    if not isinstance(value, int) or value <= 0:
      _fail(field, value, "a positive integer")
  if c.vaegan.max_train_images is not None and not c.vaegan.max_train_images > 0:
    _fail("vaegan.max_train_images", c.vaegan.max_train_images, "None (all) or a positive integer")
  for field in ("vaegan.beta", "vaegan.beta_agnostic", "vaegan.gamma", "vaegan.learning_rate"):
    value = _get(c, field)
    if not isinstance(value, (int, float)) or not value > 0:
      _fail(field, value, "a number > 0")
  for field in ("vaegan.lr_decay", "vaegan.b1", "vaegan.b2"):
    if not 0 < _get(c, field) <= 1:
      _fail(field, _get(c, field), "a number in (0, 1]")
  if c.vaegan.weight_decay < 0:
    _fail("vaegan.weight_decay", c.vaegan.weight_decay, ">= 0")
  from dmr.models.classifiers import ARCHITECTURES
  if c.classifier.architecture not in ARCHITECTURES:
    _fail("classifier.architecture", c.classifier.architecture, str(sorted(ARCHITECTURES)))


def _get(c: ml_collections.ConfigDict, dotted: str):
  for part in dotted.split("."):
    c = c[part]
  return c
