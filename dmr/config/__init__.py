"""Shared config defaults, presets and validation. configs/<dataset>.py build on `build`.

Every field is declared once in dmr/config/fields.py (FIELDS): its default, meaning, check,
whether it changes results and its value under each preset. Presets
(docs/protocol.md#presets): `paper` (the protocol), `claims` (the claims settled with intervals,
under an hour on a 2-core CPU), `quick` (every stage at reduced size, minutes on a 2-core CPU)
and `smoke` (a minute or two, for tests); configs/<dataset>.py add their own rows. `attack_spec`
maps a config section onto the attack.
"""
from __future__ import annotations

import ml_collections

from dmr import attacks, data, geometry
from dmr.config.fields import (CROSS_CHECK_ATTACKS, FIELDS, FIELDS_IN_ORDER, PRESETS, STAGES,
                               THETA_RANGES, Field)
from dmr.config.fields import MANIFOLDS, SEED_STREAMS, VARIANTS  # noqa: F401 (re-exported)
from dmr.errors import UserError, close_matches, suggest_names


def fields_of(dataset: str) -> list[Field]:
  """The fields of a config of `dataset`, in order."""
  return [f for f in FIELDS_IN_ORDER if f.datasets is None or dataset in f.datasets]


def build(dataset: str, preset: str, rows: dict | None = None) -> ml_collections.ConfigDict:
  """The config of `dataset` under `preset`: `base`, then each field's value under the preset,
  the dataset's `rows` ({field: one value per PRESETS}) in place of the table's."""
  if preset not in PRESETS:
    raise UserError(f"preset={preset!r}; allowed: {PRESETS}.{close_matches(preset, PRESETS)}")
  c = base(dataset, preset)
  own = {f.name: f.presets for f in fields_of(dataset)}
  for field, values in (rows or {}).items():
    if field not in own or len(values) != len(PRESETS):
      raise UserError(f"the preset row {field!r} of {dataset} is not a field of its config with "
                      f"one value per preset {PRESETS}.{close_matches(field, own)}")
  for field, values in {**own, **(rows or {})}.items():
    value = values[PRESETS.index(preset)]
    if value is not None:
      _set(c, field, value)
  return c


def base(dataset: str, preset: str) -> ml_collections.ConfigDict:
  """The defaults every preset starts from (docs/protocol.md where a preset sets nothing)."""
  c = ml_collections.ConfigDict()
  given = {"dataset": dataset, "preset": preset}
  for f in fields_of(dataset):
    *parents, name = f.name.split(".")
    section = c
    for part in parents:
      if part not in section:
        section[part] = ml_collections.ConfigDict()
      section = section[part]
    value = given.get(f.name, f.default)
    section[name] = placeholder(f.check.type) if value is None else value
  return c


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


def _get(c: ml_collections.ConfigDict, dotted: str):
  for part in dotted.split("."):
    c = c[part]
  return c


def _is_derived(c: ml_collections.ConfigDict, dotted: str) -> bool:
  *parents, name = dotted.split(".")
  field = _get(c, ".".join(parents))._fields[name] if parents else c._fields[name]
  return isinstance(field, ml_collections.FieldReference) and bool(field._ops)


def placeholder(field_type: type) -> ml_collections.FieldReference:
  """A field that is None by default and takes `field_type` values from overrides."""
  return ml_collections.FieldReference(None, field_type=field_type)


def _fail(field: str, value, allowed: str) -> None:
  raise UserError(f"config.{field}={value!r} is invalid; allowed: {allowed}."
                  + suggest_names(value, allowed))


def validate(c: ml_collections.ConfigDict, train_size: int | None = None) -> None:
  """Raises a UserError naming the field and its allowed values for the first invalid setting:
  each field by its check (dmr/config/fields.py), then the rules across fields.

  train_size: the size of the dataset's training set (default: the known size of c.dataset).
  """
  dataset = FIELDS["dataset"].check
  if not dataset.ok(c.dataset):
    _fail("dataset", c.dataset, dataset.allowed)
  # A field derived from another (FONTS's stn_theta_range follows data.difficulty) comes after
  # it, so that an error names the field the user set.
  for f in sorted(fields_of(c.dataset), key=lambda f: _is_derived(c, f.name)):
    value = _get(c, f.name)
    if not f.check.ok(value):
      _fail(f.name, tuple(value) if isinstance(value, list) else value, f.check.allowed)
  train_size = train_size or (c.data.num_train if c.dataset == "fonts"
                              else data.TRAIN_SIZES.get(c.dataset))
  _validate_stage_order(c.stages)
  _validate_manifolds(c)
  _validate_training_sizes(c, train_size)
  _validate_training_reach(c.adversarial_training)
  _validate_claim4_size(c.claim4, train_size)
  _validate_cross_check(c.attack)


def _validate_stage_order(stages: tuple[str, ...]) -> None:
  if list(stages) != sorted(stages, key=STAGES.index):
    _fail("stages", tuple(stages), f"stages in the order {STAGES}")


def _validate_manifolds(c: ml_collections.ConfigDict) -> None:
  """The known manifold is FONTS's alone; on-manifold training needs its manifold in the run."""
  if "true" in c.manifolds and c.dataset != "fonts":
    _fail("manifolds", tuple(c.manifolds), "'true' only with dataset='fonts' (the one known "
          "manifold); use 'learned'")
  for variant, kind in (("on_adv_learned", "learned"), ("on_adv_true", "true")):
    if variant in c.variants and kind not in c.manifolds:
      _fail("variants", tuple(c.variants), f"{variant} only with {kind!r} in config.manifolds "
            f"({tuple(c.manifolds)})")


def _validate_training_sizes(c: ml_collections.ConfigDict, train_size: int | None) -> None:
  """Every N fits the training set; every variant of the run trains at some N."""
  if train_size and any(n > train_size for n in c.training_sizes):
    _fail("training_sizes", tuple(c.training_sizes),
          f"sizes up to {train_size}, the size of {c.dataset}'s training set")
  for variant in c.variants:
    if not training_sizes_of(c, variant):
      _fail(f"variant_training_sizes.{variant}", c.variant_training_sizes[variant],
            f"sizes that include one of training_sizes {tuple(c.training_sizes)}, so that "
            f"{variant} trains at some N (or drop it from config.variants)")


def _validate_claim4_size(c4: ml_collections.ConfigDict, train_size: int | None) -> None:
  if train_size and (c4.training_size or 0) > train_size:
    _fail("claim4.training_size", c4.training_size,
          f"sizes up to {train_size}, the size of the training set")


def _validate_cross_check(a: ml_collections.ConfigDict) -> None:
  """square attacks L-inf balls only."""
  allowed = tuple(n for n in CROSS_CHECK_ATTACKS if n != "square" or a.norm == "linf")
  if a.cross_check is not None and any(n not in allowed for n in a.cross_check):
    _fail("attack.cross_check", a.cross_check,
          f"None or a non-empty tuple of {allowed} (square: linf only)")


def _validate_training_reach(a: ml_collections.ConfigDict) -> None:
  """The training attack must be able to reach its whole eps-ball: steps x step_size >= eps."""
  eps = max(a.off_eps, a.on_eps, a.stn_eps)
  if a.steps * a.step_size < eps * (1 - 1e-6):
    _fail("adversarial_training.step_size", a.step_size,
          f">= {eps / a.steps:.6g} (steps x step_size >= the largest training eps {eps}; with "
          f"{a.steps} steps a step of {a.step_size} reaches only {a.steps * a.step_size:.4g}): "
          f"raise the step size or the steps")
