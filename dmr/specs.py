"""A run's settings as small frozen values, parsed once from the config at a stage's entry.

  run = specs.RunSpec.from_config(config)
  run.classifier.train.epochs_at(250), run.attacks.off, run.vaegan.latent_dim, run.seed("pca")

The library (dmr.train, dmr.manifolds, dmr.plan, dmr.loaders) takes these specs or plain values,
never the ConfigDict: the config flows one way, dmr.main -> dmr.experiments -> the library. Every
spec is frozen and hashable (a jit static argument if need be).
"""
from __future__ import annotations

import dataclasses
import json

import ml_collections

from dmr import attacks, data, geometry, results
from dmr import config as dmr_config
from dmr.data.dataset import Dataset, num_batches

CLAIM4 = "claim4"  # The model family of claim 4's own models.
CLAIM4_VARIANTS = ("normal", "off_adv")


def _section(cls, section: ml_collections.ConfigDict, **extra):
  """cls from the fields of a config section that cls declares, plus `extra`."""
  names = {f.name for f in dataclasses.fields(cls)} - set(extra)
  return cls(**{name: section[name] for name in names}, **extra)


@dataclasses.dataclass(frozen=True)
class TrainSpec:
  """How a classifier trains (config.train): the paper's Adam and its epochs."""
  epochs: int
  min_steps: int | None
  batch_size: int
  learning_rate: float
  lr_decay: float
  b1: float
  b2: float
  weight_decay: float
  eval_batch_size: int
  checkpoint_every_steps: int
  log_every_steps: int

  def steps_per_epoch(self, n: int) -> int:
    return num_batches(n, self.batch_size)

  def epochs_at(self, n: int) -> int:
    """Epochs on n training images: `epochs`, raised at small n to reach `min_steps` optimizer
    steps when that is set."""
    if self.min_steps is None:
      return self.epochs
    return max(self.epochs, -(-self.min_steps // self.steps_per_epoch(n)))


@dataclasses.dataclass(frozen=True)
class ClassifierSpec:
  """A model family's classifiers: their architecture (dmr.models.classifiers) and training."""
  architecture: str
  train: TrainSpec


@dataclasses.dataclass(frozen=True)
class VaeganSpec:
  """The VAE-GANs of the learned manifold (config.vaegan), with the seeds of their
  initialization and batch order."""
  latent_dim: int
  epochs: int
  beta: float
  beta_agnostic: float
  gamma: float
  learning_rate: float
  lr_decay: float
  b1: float
  b2: float
  weight_decay: float
  batch_size: int
  channels: int
  discriminator_channels: int
  max_train_images: int | None
  eval_batch_size: int
  checkpoint_every_steps: int
  log_every_steps: int
  init_seed: int
  order_seed: int


@dataclasses.dataclass(frozen=True)
class DistancesSpec:
  """Claim 1's distances (config.distances) and the projections behind them."""
  num_test: int
  projection_steps: int
  projection_lr: float
  projection_restarts: int
  neighbours: int
  pca_dims: int


@dataclasses.dataclass(frozen=True)
class AttacksSpec:
  """The attacks of a run: off-manifold (config.attack) on its first num_test test images in
  batches of batch_size, on-manifold (config.on_manifold_attack, `on_manifold(kind)`), the
  training attacks of adversarial training (`training(kind)`) and the models attacked: those of
  the variants `attacked_variants`, and of a family of their own when family_attacked
  (dmr.config.is_attacked decides both)."""
  off: attacks.AttackSpec
  num_test: int
  batch_size: int
  cross_check: tuple[str, ...] | None
  on: attacks.AttackSpec
  on_agnostic: attacks.AttackSpec
  on_num_test: int
  on_batch_size: int
  training_off: attacks.AttackSpec
  training_on: attacks.AttackSpec
  training_stn: attacks.AttackSpec
  attacked_variants: tuple[str, ...]
  family_attacked: bool

  @classmethod
  def from_config(cls, c: ml_collections.ConfigDict) -> "AttacksSpec":
    a, o, t = c.attack, c.on_manifold_attack, c.adversarial_training
    return cls(off=dmr_config.attack_spec(a), num_test=a.num_test, batch_size=a.batch_size,
               cross_check=None if a.cross_check is None else tuple(a.cross_check),
               on=dmr_config.attack_spec(o), on_agnostic=dmr_config.attack_spec(o, o.eps_agnostic),
               on_num_test=o.num_test, on_batch_size=o.batch_size,
               training_off=dmr_config.attack_spec(t, t.off_eps),
               training_on=dmr_config.attack_spec(t, t.on_eps),
               training_stn=dmr_config.attack_spec(t, t.stn_eps),
               attacked_variants=tuple(v for v in dmr_config.VARIANTS
                                       if dmr_config.is_attacked(c, results.model_key(v, 0, 0))),
               family_attacked=dmr_config.is_attacked(c, results.model_key("normal", 0, 0,
                                                                           CLAIM4)))

  def on_manifold(self, kind: str) -> attacks.AttackSpec:
    """The on-manifold attack on manifold kind `kind` (eps_agnostic for learned_agnostic)."""
    return self.on_agnostic if kind == "learned_agnostic" else self.on

  def training(self, kind: str) -> attacks.AttackSpec:
    """The training attack of kind "off", "on" or "stn" (dmr.train.variants)."""
    return {"off": self.training_off, "on": self.training_on, "stn": self.training_stn}[kind]


@dataclasses.dataclass(frozen=True)
class RunSpec:
  """Everything the stages of one run read from its config."""
  dataset: str
  data_json: str  # config.data as JSON (dmr.data.load_configured).
  stages: tuple[str, ...]
  manifolds: tuple[str, ...]
  sizes_of: tuple[tuple[str, tuple[int, ...]], ...]  # (variant, its training sizes), in order.
  model_seeds: tuple[int, ...]
  seed_of: tuple[tuple[str, int], ...]  # (stream, its seed without a model's), SEED_STREAMS.
  seed_offsets: tuple[tuple[str, int], ...]
  stn_theta_range: geometry.ThetaRange
  classifier: ClassifierSpec
  claim4: ClassifierSpec | None  # None: claim 4 uses the sweep's models.
  claim4_size: int
  vaegan: VaeganSpec
  distances: DistancesSpec
  attacks: AttacksSpec

  @classmethod
  def from_config(cls, c: ml_collections.ConfigDict) -> "RunSpec":
    train = _section(TrainSpec, c.train)
    claim4 = None
    if c.claim4.architecture is not None:
      claim4 = ClassifierSpec(c.claim4.architecture,
                              dataclasses.replace(train, epochs=c.claim4.epochs or train.epochs))
    return cls(
        dataset=c.dataset, data_json=c.data.to_json(), stages=tuple(c.stages),
        manifolds=tuple(c.manifolds),
        sizes_of=tuple((v, dmr_config.training_sizes_of(c, v)) for v in c.variants),
        model_seeds=tuple(dmr_config.model_seeds(c)),
        seed_of=tuple((s, dmr_config.seed(c, s)) for s in dmr_config.SEED_STREAMS),
        seed_offsets=tuple((s, c.seeds[s]) for s in dmr_config.SEED_STREAMS),
        stn_theta_range=dmr_config.stn_theta_range(c),
        classifier=ClassifierSpec(c.classifier.architecture, train), claim4=claim4,
        claim4_size=c.claim4.training_size or max(c.training_sizes),
        vaegan=_section(VaeganSpec, c.vaegan, init_seed=dmr_config.seed(c, "model_init"),
                        order_seed=dmr_config.seed(c, "data_order")),
        distances=_section(DistancesSpec, c.distances), attacks=AttacksSpec.from_config(c))

  def seed(self, stream: str, model_seed: int | None = None) -> int:
    """The seed of `stream` (dmr.config.seed): the run's, or the model's for model_init and
    data_order, plus the stream's offset."""
    if model_seed is None:
      return dict(self.seed_of)[stream]
    return model_seed + dict(self.seed_offsets)[stream]

  def load_dataset(self) -> Dataset:
    """The run's dataset (cached: the stages of one run share it)."""
    return data.load_configured(self.dataset, ml_collections.ConfigDict(json.loads(self.data_json)))

  def family(self, family: str | None) -> ClassifierSpec:
    """The classifiers of `family`: the sweep's (None) or claim 4's own (CLAIM4)."""
    if family is None:
      return self.classifier
    if family != CLAIM4 or self.claim4 is None:
      raise ValueError(f"family={family!r}; known: None (the sweep)"
                       + (f", {CLAIM4!r}" if self.claim4 else "") + ".")
    return self.claim4

  def model_keys(self) -> list[dict]:
    """results.model_key of every model the classifiers stage trains, in training order: the
    sweep's, then claim 4's own family when it has one."""
    keys = [results.model_key(v, n, s) for v, sizes in self.sizes_of for n in sizes
            for s in self.model_seeds]
    if self.claim4 is not None:
      keys += [results.model_key(v, self.claim4_size, s, CLAIM4) for v in CLAIM4_VARIANTS
               for s in self.model_seeds]
    return keys

  def family_fields(self, family: str | None) -> dict:
    """Record fields naming how a family's models were trained ({} for the sweep's)."""
    if family is None:
      return {}
    spec = self.family(family)
    return {"architecture": spec.architecture, "epochs": spec.train.epochs_at(self.claim4_size)}

  def is_attacked(self, key: dict) -> bool:
    """Whether the attacks stage attacks model `key` (dmr.config.is_attacked)."""
    if "family" in key:
      return self.attacks.family_attacked
    return key["variant"] in self.attacks.attacked_variants
