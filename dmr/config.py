"""Shared config defaults, presets and validation. configs/<dataset>.py build on `base`.

Presets (docs/protocol.md#presets): `paper` (the protocol), `claims` (the claims settled with
intervals, under an hour on a 2-core CPU), `quick` (every stage at reduced size, minutes on a
2-core CPU) and `smoke` (a minute or two, for tests), each a column of SHARED_PRESETS and of the
dataset's rows in configs/<dataset>.py. `attack_spec` maps a config section onto the attack.
"""
from __future__ import annotations

import ml_collections

from dmr import attacks, data, geometry
from dmr.errors import UserError, suggest_names

PRESETS = ("paper", "claims", "quick", "smoke")
SEED_STREAMS = ("model_init", "data_order", "attacks", "pca")
MANIFOLDS = ("learned", "true")
THETA_RANGES = {"augmentation": geometry.AUGMENTATION, **geometry.FONTS_RANGES}
# In run order: on_adv_learned training needs the VAE-GANs of `manifolds`.
STAGES = ("manifolds", "classifiers", "attacks", "distances", "report")
VARIANTS = ("normal", "off_adv", "on_adv_learned", "on_adv_true", "stn_augm", "stn_adv")
PAPER_VARIANTS = ("normal", "off_adv", "on_adv_learned", "stn_augm", "stn_adv")
REDUCED_VARIANTS = ("normal", "off_adv", "on_adv_learned")
# Claims 1-3 compare normal models with on-manifold adversarially trained ones.
CLAIMS_VARIANTS = ("normal", "on_adv_learned")
PAPER_TRAINING_SIZES = (250, 500, 1000, 1500, 2000, 2500, 5000, 7500, 10000, 15000, 20000, 30000,
                        40000)


# The fields each preset sets, shared by every dataset; configs/<dataset>.py add their own rows
# (a dataset's row replaces a shared one). None keeps the default. Columns: PRESETS.
# claims: sized from measured stage times so that one run of configs/fashion.py (claims 1-3) or
# configs/fonts.py (claims 1-4) settles its claims in under an hour on a 2-core CPU: only the
# variants the claims compare, more attacked images than quick, VAE-GANs trained longer. Claim 3
# compares training runs: every model trains at least 120 steps (at N=250 ten epochs are 30 steps,
# and those unconverged models' test errors spread over 26-36% between seeds, hiding the effect;
# 40 epochs bring the effect's SD under a point), on-manifold adversarial training (the costly part)
# runs at the small N only, and normal models span 250 to 8000 (once N=250 trains to convergence,
# its on-manifold success equals N=2000's). Measured: docs/protocol.md#presets.
SHARED_PRESETS = {
    #  field                             paper                  claims           quick             smoke
    "models_per_size":                  (3,                     12,              1,                1),
    "training_sizes":                   (PAPER_TRAINING_SIZES,  (250, 8000),     (500, 2000),      (200,)),
    "variants":                         (PAPER_VARIANTS,        CLAIMS_VARIANTS, REDUCED_VARIANTS, REDUCED_VARIANTS),
    "variant_training_sizes.on_adv_learned": (None,             (250,),          None,             None),
    "train.epochs":                     (20,                    10,              10,               1),
    "train.min_steps":                  (None,                  120,             None,             None),
    "train.checkpoint_every_steps":     (500,                   500,             500,              1),
    "train.log_every_steps":            (50,                    50,              50,               1),
    # Small N is where on-manifold training should help; 10 attack steps per training batch keep
    # quick's adversarial training within the demo's 15 minutes on 2 CPU cores. Every preset's
    # training attack reaches its whole eps-ball (steps x step_size >= eps, see `validate`):
    # paper keeps the authors' Adam with lr 0.3 / 40; cut presets take sign steps of 2.5 eps / steps.
    "adversarial_training.steps":       (40,                    10,              10,               3),
    "adversarial_training.optimizer":   ("adam",                "sign",          "sign",           "sign"),
    "adversarial_training.step_size":   (0.0075,                0.075,           0.075,            0.25),
    "attack.steps":                     (40,                    40,              40,               3),
    "attack.restarts":                  (5,                     2,               2,                2),
    # smoke: sign steps reaching eps, so that tests see successful examples after 3 steps.
    "attack.optimizer":                 ("adam",                "adam",          "adam",           "sign"),
    "attack.step_size":                 (0.005,                 0.005,           0.005,            0.25),
    "on_manifold_attack.optimizer":     ("adam",                "adam",          "adam",           "sign"),
    "on_manifold_attack.step_size":     (0.005,                 0.005,           0.005,            0.25),
    "attack.num_test":                  (1000,                  500,             500,              40),
    "attack.batch_size":                (500,                   500,             500,              40),
    "on_manifold_attack.steps":         (40,                    40,              40,               3),
    "on_manifold_attack.restarts":      (5,                     2,               2,                2),
    "on_manifold_attack.num_test":      (2500,                  1000,            500,              40),
    "on_manifold_attack.batch_size":    (500,                   500,             500,              40),
    "distances.num_test":               (1000,                  500,             250,              40),
    "distances.projection_steps":       (100,                   100,             100,              5),
    # quick: the 11 Fashion-MNIST VAE-GANs in about 2-3 minutes on a 2-core CPU (measured),
    # reconstructions still recognizable.
    "vaegan.epochs":                    (30,                    5,               2,                1),
    "vaegan.channels":                  (64,                    16,              16,               4),
    "vaegan.discriminator_channels":    (64,                    16,              16,               4),
    "vaegan.max_train_images":          (None,                  3000,            3000,             200),
    "vaegan.eval_batch_size":           (1000,                  1000,            1000,             500),
    "vaegan.checkpoint_every_steps":    (500,                   500,             500,              1),
    "vaegan.log_every_steps":           (50,                    50,              50,               1),
}


def build(dataset: str, preset: str, rows: dict | None = None) -> ml_collections.ConfigDict:
  """The config of `dataset` under `preset`: `base`, then SHARED_PRESETS's column of the preset
  with the dataset's `rows` ({field: one value per PRESETS}) in place of the shared ones."""
  if preset not in PRESETS:
    raise ValueError(f"preset={preset!r}; allowed: {PRESETS}.")
  c = base(dataset, preset)
  for field, values in {**SHARED_PRESETS, **(rows or {})}.items():
    value = values[PRESETS.index(preset)]
    if value is not None:
      _set(c, field, value)
  return c


def base(dataset: str, preset: str) -> ml_collections.ConfigDict:
  """The defaults every preset starts from (docs/protocol.md where a preset sets nothing)."""
  c = ml_collections.ConfigDict()
  c.dataset = dataset
  c.preset = preset
  c.progress = True  # Progress bars on a terminal (dmr.progress); False: none.
  # The base seed, and the offset of each named stream from it (see `seed`): changing one offset
  # (--config.seeds.attacks=1 redraws the attack noise) moves no other stream.
  c.seed = 0
  c.seeds = ml_collections.ConfigDict({stream: 0 for stream in SEED_STREAMS})
  c.stages = STAGES
  c.training_sizes = PAPER_TRAINING_SIZES
  c.models_per_size = 3
  c.variants = PAPER_VARIANTS
  # Per variant, the N of training_sizes it trains at (None: every one); see `training_sizes_of`.
  c.variant_training_sizes = ml_collections.ConfigDict(
      {variant: placeholder(tuple) for variant in VARIANTS})
  # The data manifolds of the run (dmr.manifolds): "learned" (VAE-GANs, stage `manifolds`),
  # "true" (the known FONTS manifold). The first is the one the attacks stage reports.
  c.manifolds = ("learned",)
  # The theta range of stn_augm and stn_adv: "augmentation" (docs/protocol.md#training-variants)
  # or a FONTS difficulty.
  c.stn_theta_range = "augmentation"

  c.data = ml_collections.ConfigDict()
  c.data.dir = placeholder(str)  # None: the source's default.

  c.classifier = ml_collections.ConfigDict()
  c.classifier.architecture = "conv"

  c.train = ml_collections.ConfigDict()
  c.train.epochs = 20
  # None: `epochs` at every N (the paper). Else every classifier trains at least this many
  # optimizer steps: at small N its epochs rise to ceil(min_steps / batches per epoch).
  c.train.min_steps = placeholder(int)
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
  # highest-loss iterate (early_stop False), one restart, in eval mode; steps x step_size must
  # reach the largest eps (a sign or Adam step moves each coordinate by at most step_size). eps: image-space L-inf
  # (off_adv), latent / theta L-inf (on_adv_*), theta L-inf around the identity (stn_adv).
  c.adversarial_training = ml_collections.ConfigDict()
  c.adversarial_training.off_eps = 0.3
  c.adversarial_training.on_eps = 0.3
  c.adversarial_training.stn_eps = 0.3
  c.adversarial_training.steps = 40
  c.adversarial_training.step_size = 0.0075  # 40 x 0.0075 = 0.3: the whole eps-ball.
  c.adversarial_training.optimizer = "adam"
  c.adversarial_training.init = "paper"
  c.adversarial_training.restarts = 1
  c.adversarial_training.early_stop = False

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
  # A stronger attack run beside the paper's on the same images at the same eps: None, or a tuple
  # of dmr.attacks.evaluate attacks (CROSS_CHECK_ATTACKS). An input counts as broken when either
  # breaks it; the report's off-manifold rates then count the union.
  c.attack.cross_check = placeholder(tuple)
  # The variants whose models the attacks stage attacks: None, all of them; else a tuple, e.g.
  # ("normal",) when only normal models' success rates are wanted (claims 1-3 read the other
  # variants' test errors alone). Claim 4's own model family is always attacked.
  c.attack.variants = placeholder(tuple)

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

  # Claim 4's own models (docs/protocol.md#claims): normal and off_adv at one N, models_per_size
  # seeds each, under their own architecture and epochs, reported apart from the sweep's models.
  # architecture None: claim 4 uses the sweep's models.
  c.claim4 = ml_collections.ConfigDict()
  c.claim4.architecture = placeholder(str)
  c.claim4.epochs = placeholder(int)  # None: train.epochs.
  c.claim4.training_size = placeholder(int)  # None: the largest of training_sizes.

  # Claim 1: distances of test images and adversarial examples to the manifold.
  c.distances = ml_collections.ConfigDict()
  c.distances.num_test = 1000
  c.distances.projection_steps = 100
  c.distances.projection_lr = 0.1
  c.distances.projection_restarts = 1
  c.distances.neighbours = 50
  c.distances.pca_dims = 40

  # --- VAE-GANs of the learned manifold (docs/protocol.md#vae-gan; stage `manifolds`) -------------
  # One per class and one class-agnostic, each on the FULL training set of its class (the first
  # max_train_images rows of it when set). Per-dataset values: the rows of configs/<dataset>.py.
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
  return c


# The attacks of dmr.attacks.evaluate that attack.cross_check may name (square: linf only).
CROSS_CHECK_ATTACKS = ("apgd-ce", "apgd-dlr", "apgd-t", "square")


ATTACK_FIELDS = ("norm", "steps", "step_size", "optimizer", "init", "restarts", "early_stop")


def attack_spec(section: ml_collections.ConfigDict, eps: float | None = None) -> attacks.AttackSpec:
  """The attack a config section (attack, on_manifold_attack, adversarial_training) describes;
  eps: its radius when the section has several (adversarial_training)."""
  options = {f: section[f] for f in ATTACK_FIELDS if f in section}
  # The rolled loop (unroll=False): dmr's own models compute their convolutions in forms that
  # XLA:CPU runs as fast inside a loop body as unrolled (benchmarks/attacks.py: as fast with sign
  # steps, 15-21% faster with Adam), and it compiles several times faster and can end early.
  return attacks.AttackSpec(eps=section.eps if eps is None else eps, unroll=False, **options)


def training_sizes_of(c: ml_collections.ConfigDict, variant: str) -> tuple[int, ...]:
  """The N of c.training_sizes at which `variant` trains: all of them, or those also in
  c.variant_training_sizes[variant] when that is set (e.g. adversarial training only at small N,
  where its effect is, while normal models also train at large N)."""
  only = c.variant_training_sizes[variant]
  return tuple(n for n in c.training_sizes if only is None or n in only)


def is_attacked(c: ml_collections.ConfigDict, key: dict) -> bool:
  """Whether the attacks stage attacks the model `key` (dmr.results.model_key) names."""
  return c.attack.variants is None or key["variant"] in c.attack.variants or "family" in key


def model_seeds(c: ml_collections.ConfigDict) -> list[int]:
  """The seeds naming the models of each training size (their records and directories)."""
  return [c.seed + m for m in range(c.models_per_size)]


def seed(c: ml_collections.ConfigDict, stream: str, model_seed: int | None = None) -> int:
  """The seed of `stream` (SEED_STREAMS): the base seed (or the model's, for model_init and
  data_order) plus the stream's offset c.seeds[stream]."""
  return (c.seed if model_seed is None else model_seed) + c.seeds[stream]


def stn_theta_range(c: ml_collections.ConfigDict) -> geometry.ThetaRange:
  return THETA_RANGES[c.stn_theta_range]


def _set(c: ml_collections.ConfigDict, dotted: str, value) -> None:
  *parents, name = dotted.split(".")
  for part in parents:
    c = c[part]
  c[name] = value


def placeholder(field_type: type) -> ml_collections.FieldReference:
  """A field that is None by default and takes `field_type` values from overrides."""
  return ml_collections.FieldReference(None, field_type=field_type)


def _fail(field: str, value, allowed: str) -> None:
  raise UserError(f"config.{field}={value!r} is invalid; allowed: {allowed}."
                  + suggest_names(value, allowed))


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
  for kind in c.manifolds:
    if kind not in MANIFOLDS:
      _fail("manifolds", tuple(c.manifolds), f"a non-empty tuple of {MANIFOLDS}")
  if not c.manifolds:
    _fail("manifolds", tuple(c.manifolds), f"a non-empty tuple of {MANIFOLDS}")
  if "true" in c.manifolds and c.dataset != "fonts":
    _fail("manifolds", tuple(c.manifolds), "'true' only with dataset='fonts' (the one known "
          "manifold); use 'learned'")
  for variant, kind in (("on_adv_learned", "learned"), ("on_adv_true", "true")):
    if variant in c.variants and kind not in c.manifolds:
      _fail("variants", tuple(c.variants), f"{variant} only with {kind!r} in config.manifolds "
            f"({tuple(c.manifolds)})")
  if c.stn_theta_range not in THETA_RANGES:
    _fail("stn_theta_range", c.stn_theta_range, str(tuple(THETA_RANGES)))
  for stream in SEED_STREAMS:
    if not isinstance(c.seeds[stream], int):
      _fail(f"seeds.{stream}", c.seeds[stream], "an integer")
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
  for variant in VARIANTS:
    sizes = c.variant_training_sizes[variant]
    if sizes is not None and (not sizes or any(not isinstance(n, int) or n <= 0 for n in sizes)):
      _fail(f"variant_training_sizes.{variant}", sizes,
            "None (every N of training_sizes) or a non-empty tuple of positive integers")
    if variant in c.variants and not training_sizes_of(c, variant):
      _fail(f"variant_training_sizes.{variant}", sizes,
            f"sizes that include one of training_sizes {tuple(c.training_sizes)}, so that "
            f"{variant} trains at some N (or drop it from config.variants)")
  for field in ("models_per_size", "train.epochs", "train.batch_size", "train.eval_batch_size",
                "train.checkpoint_every_steps", "train.log_every_steps"):
    value = _get(c, field)
    if not isinstance(value, int) or value <= 0:
      _fail(field, value, "a positive integer")
  if c.train.min_steps is not None and (not isinstance(c.train.min_steps, int)
                                        or c.train.min_steps <= 0):
    _fail("train.min_steps", c.train.min_steps, "a positive integer, or None (epochs at every N)")
  for field in ("attack.steps", "attack.restarts", "attack.num_test", "attack.batch_size",
                "on_manifold_attack.steps", "on_manifold_attack.restarts",
                "on_manifold_attack.num_test", "on_manifold_attack.batch_size",
                "adversarial_training.steps", "adversarial_training.restarts", "distances.num_test",
                "distances.projection_steps",
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
  _validate_training_reach(c.adversarial_training)
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
  _validate_claim4(c.claim4, train_size)
  _validate_cross_check(c.attack)
  if c.attack.variants is not None and (
      not c.attack.variants or any(v not in VARIANTS for v in c.attack.variants)):
    _fail("attack.variants", c.attack.variants,
          f"None (every variant) or a non-empty tuple of {VARIANTS}")


def _validate_claim4(c4: ml_collections.ConfigDict, train_size: int | None) -> None:
  from dmr.models.classifiers import ARCHITECTURES
  if c4.architecture is not None and c4.architecture not in ARCHITECTURES:
    _fail("claim4.architecture", c4.architecture,
          f"None (claim 4 uses the sweep's models) or one of {sorted(ARCHITECTURES)}")
  for field, meaning in (("epochs", "train.epochs"), ("training_size", "the largest training size")):
    value = c4[field]
    if value is not None and (not isinstance(value, int) or value <= 0):
      _fail(f"claim4.{field}", value, f"None ({meaning}) or a positive integer")
  if train_size and (c4.training_size or 0) > train_size:
    _fail("claim4.training_size", c4.training_size,
          f"sizes up to {train_size}, the size of the training set")


def _validate_cross_check(a: ml_collections.ConfigDict) -> None:
  allowed = tuple(n for n in CROSS_CHECK_ATTACKS if n != "square" or a.norm == "linf")
  names = a.cross_check
  if names is not None and (not names or any(n not in allowed for n in names)):
    _fail("attack.cross_check", names, f"None or a non-empty tuple of {allowed}"
          + (" (square: linf only)" if a.norm != "linf" else ""))


def _validate_training_reach(a: ml_collections.ConfigDict) -> None:
  """The training attack must be able to reach its whole eps-ball: steps x step_size >= eps."""
  eps = max(a.off_eps, a.on_eps, a.stn_eps)
  if a.steps * a.step_size < eps * (1 - 1e-6):
    _fail("adversarial_training.step_size", a.step_size,
          f">= {eps / a.steps:.6g} (steps x step_size >= the largest training eps {eps}; with "
          f"{a.steps} steps a step of {a.step_size} reaches only {a.steps * a.step_size:.4g}): "
          f"raise the step size or the steps")


def _get(c: ml_collections.ConfigDict, dotted: str):
  for part in dotted.split("."):
    c = c[part]
  return c
