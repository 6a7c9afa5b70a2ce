"""Typed records of results.json: the model key, the attack outcomes, and the one place that
names their fields.

A record is the JSON dict of one trained model: its key (variant, n, seed, family), its test
error once trained, its attack outcomes once attacked, the files it names. Writers build typed
values and serialise them with `fields()`; readers parse them back with `parse(record)`:

  key = ModelKey.of(record)                      # frozen, hashable, sortable by `order`
  attacks = AttackOutcomes.parse(record)         # None until the attacks stage ran
  attacks.off.success, attacks.on_rates("learned").success_any

Field names are exactly those of today's results.json: "<prefix>_success", "_success_any",
"_evaluated", "_correct", "_success_per_restart", "_verified", "_rejected" per attack, with
prefix "off_manifold" for the regular attack and "on_<kind>" per manifold kind; the cross-check
adds "off_manifold_cross_check[_success]" and "off_manifold_combined_success[_any]". Records
also carry "on_manifold_*", a copy of the first kind's fields written for older readers: parsing
reads the kind-specific fields and falls back to the copy only for records that predate them.

The per-image arrays behind the rates (dmr/outcomes.py) are named here too: `off_arrays`,
`cross_check_arrays` and `on_arrays` build them, `off_success`, `cross_check_success`,
`on_success` and `test_error` read them over the inputs the rates count.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Optional

import numpy as np

KINDS = ("true", "learned", "learned_agnostic")  # Manifold kinds, in the order readers take them.
OFF = "off_manifold"  # The regular attack's field prefix.
LEGACY_ON = "on_manifold"  # The first kind's fields again (kept in records for older readers).
TEST_ERROR = "test_error"
CROSS_CHECK = "off_manifold_cross_check"
COMBINED = "off_manifold_combined"


def on_prefix(kind: Optional[str]) -> str:
  """The field prefix of the on-manifold attack on manifold `kind` (None: of a record that
  predates kind-specific fields, "on_manifold")."""
  return LEGACY_ON if kind is None else f"on_{kind}"


# ---- The model key -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ModelKey:
  """The fields naming a model in its record; family: its model family (None: the sweep's,
  whose records carry no "family"; see dmr.train.classifier)."""
  variant: str
  n: int
  seed: int
  family: Optional[str] = None

  def __post_init__(self):
    object.__setattr__(self, "n", int(self.n))
    object.__setattr__(self, "seed", int(self.seed))
    object.__setattr__(self, "family", self.family or None)

  def as_dict(self) -> dict:
    """The key's JSON form: {"variant", "n", "seed"} and "family" when it has one."""
    key = {"variant": self.variant, "n": self.n, "seed": self.seed}
    return {**key, "family": self.family} if self.family else key

  @classmethod
  def of(cls, record: Mapping) -> "ModelKey":
    """The key of a record (or of a key's JSON form)."""
    return cls(record["variant"], record["n"], record["seed"], record.get("family"))

  @property
  def order(self) -> tuple:
    """Records in file order: the sweep's by (variant, n, seed), then each family's."""
    return self.family or "", self.variant, self.n, self.seed


def is_trained(record: Mapping) -> bool:
  """Whether the classifiers stage finished the record's model (its test error is recorded)."""
  return TEST_ERROR in record


def is_attacked(record: Mapping) -> bool:
  """Whether the attacks stage finished the record's model: its record holds the regular
  attack's re-verified counts, written with every on-manifold kind's at once. Records from
  before re-verification (rates only) count as not attacked: the attacks stage redoes them."""
  return f"{OFF}_verified" in record


def family_training(record: Mapping) -> tuple[Optional[str], Optional[int]]:
  """(architecture, epochs) a family's model trained with (dmr.train.classifier.family_fields;
  None for the sweep's models, whose records carry neither)."""
  return record.get("architecture"), record.get("epochs")


# ---- One attack's rates ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AttackRates:
  """One attack's record fields: its rates (the paper's over (input, restart) pairs; any
  restart: worst case over restarts), inputs evaluated and correctly classified, successes per
  restart over the correct inputs, successes re-verified and rejected. None: a field the record
  lacks (written by an older version)."""
  success: float
  success_any: Optional[float] = None
  evaluated: Optional[int] = None
  correct: Optional[int] = None
  success_per_restart: Optional[tuple[int, ...]] = None
  verified: Optional[int] = None
  rejected: Optional[int] = None

  @classmethod
  def of(cls, outcome) -> "AttackRates":
    """The rates of a dmr.robustness.Outcome (correct [N], success [N, R], verified, rejected)."""
    r = outcome.rates
    per_restart = tuple(int(c) for c in (outcome.success & outcome.correct[:, None]).sum(axis=0))
    return cls(r.success, r.success_any, r.evaluated, r.correct, per_restart, outcome.verified,
               outcome.rejected)

  def fields(self, prefix: str) -> dict:
    """The record fields "<prefix>_success", ... (those not None)."""
    values = dataclasses.asdict(self)
    if self.success_per_restart is not None:
      values["success_per_restart"] = list(self.success_per_restart)
    return {f"{prefix}_{name}": v for name, v in values.items() if v is not None}

  @classmethod
  def parse(cls, record: Mapping, prefix: str) -> Optional["AttackRates"]:
    """The rates of attack `prefix` in `record` (None when it has no "<prefix>_success")."""
    if f"{prefix}_success" not in record:
      return None
    values = {f.name: record.get(f"{prefix}_{f.name}") for f in dataclasses.fields(cls)}
    if values["success_per_restart"] is not None:
      values["success_per_restart"] = tuple(values["success_per_restart"])
    return cls(**values)


@dataclasses.dataclass(frozen=True)
class CrossCheck:
  """attack.cross_check's record fields: its attacks (dmr.attacks.evaluate names), the share of
  correctly classified inputs it broke, and the rates of its union with the regular attack (an
  input broken when either breaks it)."""
  attacks: tuple[str, ...]
  success: float
  combined_success: float
  combined_success_any: float

  def fields(self) -> dict:
    return {CROSS_CHECK: list(self.attacks), f"{CROSS_CHECK}_success": self.success,
            f"{COMBINED}_success": self.combined_success,
            f"{COMBINED}_success_any": self.combined_success_any}

  @classmethod
  def parse(cls, record: Mapping) -> Optional["CrossCheck"]:
    if CROSS_CHECK not in record:
      return None
    return cls(tuple(record[CROSS_CHECK]), record[f"{CROSS_CHECK}_success"],
               record[f"{COMBINED}_success"], record[f"{COMBINED}_success_any"])


@dataclasses.dataclass(frozen=True)
class AttackOutcomes:
  """A model's attack outcomes: the regular (off-manifold) attack (None: not run), the
  on-manifold attack per manifold kind ((kind, rates) pairs; writers: in the run's order, whose
  first kind the record's "on_manifold_*" copy repeats; parsed: in KINDS order), and the
  cross-check when it ran."""
  off: Optional[AttackRates]
  on: tuple[tuple[Optional[str], AttackRates], ...] = ()
  cross_check: Optional[CrossCheck] = None

  def fields(self) -> dict:
    """The record fields of every attack, exactly as results.json stores them."""
    fields = {} if self.off is None else self.off.fields(OFF)
    if self.cross_check is not None:
      fields.update(self.cross_check.fields())
    for kind, rates in self.on:
      fields.update(rates.fields(on_prefix(kind)))
    if self.on:
      fields.update(self.on[0][1].fields(LEGACY_ON))
    return fields

  @classmethod
  def parse(cls, record: Mapping) -> Optional["AttackOutcomes"]:
    """The attack outcomes of a record (None when it has none). Records that predate the
    kind-specific fields give their "on_manifold_*" rates under kind None."""
    on = tuple((kind, rates) for kind in KINDS
               if (rates := AttackRates.parse(record, on_prefix(kind))) is not None)
    legacy = AttackRates.parse(record, LEGACY_ON)
    if not on and legacy is not None:
      on = ((None, legacy),)
    off = AttackRates.parse(record, OFF)
    if off is None and not on:
      return None
    return cls(off, on, CrossCheck.parse(record))

  def on_rates(self, kind: Optional[str] = None) -> Optional[AttackRates]:
    """The on-manifold rates on manifold `kind` (None: the first kind recorded)."""
    return next((rates for k, rates in self.on if kind is None or k == kind), None)

  def summary(self) -> str:
    """The success rates, e.g. "off-manifold 98.2% (any restart 99.0%, 412 verified), on
    learned 12.5% (any restart 14.1%, 57 verified)", attacks in the order of their prefixes."""
    rows = [] if self.off is None else [(OFF, self.off.success, self.off.success_any,
                                         self.off.verified)]
    rows += [(on_prefix(kind), r.success, r.success_any, r.verified) for kind, r in self.on]
    if self.cross_check is not None:
      c = self.cross_check
      rows += [(COMBINED, c.combined_success, c.combined_success_any, None),
               (CROSS_CHECK, c.success, None, None)]
    parts = []
    for prefix, success, success_any, verified in sorted(rows, key=lambda row: row[0]):
      extras = ", ".join(([] if success_any is None else
                          [f"any restart {100 * success_any:.1f}%"])
                         + ([] if verified is None else [f"{verified} verified"]))
      name = prefix.replace(OFF, "off-manifold").replace("_", " ")
      parts.append(f"{name} {100 * success:.1f}%" + (f" ({extras})" if extras else ""))
    return ", ".join(parts)


# ---- Per-image arrays (dmr/outcomes.py) --------------------------------------------------------


def off_arrays(off) -> dict:
  """The regular attack's per-image arrays of a dmr.robustness.Outcome over A test images:
  off_correct [A], off_success [R, A]."""
  return {"off_correct": off.correct, "off_success": off.success.T}


def cross_check_arrays(cross: np.ndarray, combined: np.ndarray) -> dict:
  """The cross-check's per-image arrays: off_cross_success [A] (it broke the input) and
  off_combined_success [R, A] (combined [A, R]: it or the regular attack's restart broke it)."""
  return {"off_cross_success": cross, "off_combined_success": combined.T}


def on_arrays(kind: str, rows: np.ndarray, on, outcome) -> dict:
  """The on_<kind>_* arrays over test rows `rows` [M] of an on-manifold attack on on.rows (a
  dmr.manifolds.OnManifold) with dmr.robustness.Outcome `outcome`: evaluated [M], correct [M],
  success [R, M]; rows not attacked are not evaluated."""
  evaluated = np.isin(rows, on.rows)
  where = np.searchsorted(rows, on.rows)
  correct = np.zeros(len(rows), bool)
  correct[where] = outcome.correct
  success = np.zeros((outcome.success.shape[1], len(rows)), bool)
  success[:, where] = outcome.success.T
  return {f"{on_prefix(kind)}_evaluated": evaluated, f"{on_prefix(kind)}_correct": correct,
          f"{on_prefix(kind)}_success": success}


def test_error(arrays: Mapping) -> Optional[np.ndarray]:
  """float64 [T]: each test image misclassified (1.0) or not; None without test outcomes."""
  return 1.0 - arrays["test_correct"].astype(np.float64) if "test_correct" in arrays else None


def off_success(arrays: Mapping, combined: bool = True) -> Optional[np.ndarray]:
  """float64 [R, C]: each restart's success on the C correctly classified attacked images;
  combined: the union with the cross-check when the model had one (else the paper's attack)."""
  name = "off_combined_success" if combined and "off_combined_success" in arrays else \
      "off_success"
  if name not in arrays:
    return None
  return arrays[name][:, arrays["off_correct"].astype(bool)].astype(np.float64)


def cross_check_success(arrays: Mapping) -> Optional[np.ndarray]:
  """float64 [C]: the cross-check broke each correctly classified attacked image (1.0) or not."""
  if "off_cross_success" not in arrays:
    return None
  return arrays["off_cross_success"][arrays["off_correct"].astype(bool)].astype(np.float64)


def on_kind(arrays: Mapping) -> Optional[str]:
  """The first manifold kind (KINDS order) with on-manifold outcomes in `arrays`."""
  return next((k for k in KINDS if f"{on_prefix(k)}_success" in arrays), None)


def on_success(arrays: Mapping) -> Optional[np.ndarray]:
  """float64 [R, C]: each restart's on-manifold success (first kind, `on_kind`) on the C inputs
  its rate counts (evaluated and correctly classified at the on-manifold start)."""
  kind = on_kind(arrays)
  if kind is None:
    return None
  p = on_prefix(kind)
  counted = arrays[f"{p}_evaluated"].astype(bool) & arrays[f"{p}_correct"].astype(bool)
  return arrays[f"{p}_success"][:, counted].astype(np.float64)
