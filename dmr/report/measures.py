"""Per-image outcomes -> Measures: a quantity's point value over models with its 95% interval
(dmr.stats), or the rates the records stored (no interval) for records without outcomes.

With 2 or more models (seeds) in a setting whose per-image arrays cover the same test rows, a
rate or a difference gets the seed-level t interval (stats.seed_rate_interval,
seed_difference_interval): every seed's rate counts once, the spread between training runs and
between images (on FONTS: between fonts, when the records name their font count) both enter.
One seed, or arrays of different rows, keep the image-level interval, and the Measure says so."""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional

import numpy as np

from dmr import records, stats
from dmr.report.pooling import Model, by_setting

METRICS = {
    "test_error": "test error",
    "off_manifold_success": "off-manifold success (paper rate)",
    "off_manifold_success_any": "off-manifold success (any restart)",
    "on_manifold_success": "on-manifold success (paper rate)",
    "on_manifold_success_any": "on-manifold success (any restart)",
}


@dataclasses.dataclass(frozen=True)
class Measure:
  """A quantity over models: its point value and, when per-image outcomes exist, its interval."""
  value: float
  interval: Optional[stats.Interval]
  seeds: int  # fewest models in any setting it pools
  note: str = ""  # how the interval was taken when not seed-level over aligned rows


def _reduced(array: Optional[np.ndarray], reduce: Callable) -> Optional[np.ndarray]:
  """Per image: its restarts' success [R, C] reduced over restarts."""
  return None if array is None else reduce(array, axis=0)


PER_IMAGE: dict[str, Callable[[dict], Optional[np.ndarray]]] = {
    "test_error": records.test_error,
    "off_manifold_success": lambda o: _reduced(records.off_success(o), np.mean),
    "off_manifold_success_any": lambda o: _reduced(records.off_success(o), np.max),
    # Not in the tables: claim 4 states the two attacks of the union apart.
    "off_manifold_paper_success": lambda o: _reduced(records.off_success(o, combined=False),
                                                     np.mean),
    "off_manifold_cross_check_success": records.cross_check_success,
    "on_manifold_success": lambda o: _reduced(records.on_success(o), np.mean),
    "on_manifold_success_any": lambda o: _reduced(records.on_success(o), np.max),
}


def _stored_rate(attack: Callable[[records.AttackOutcomes], Optional[object]],
                 name: str) -> Callable[[Model], Optional[float]]:
  """Reads field `name` of the rates attack(outcomes) of a model's record (None when absent)."""
  def read(m: Model) -> Optional[float]:
    rates = attack(m.attacks) if m.attacks else None
    return None if rates is None else getattr(rates, name)
  return read


# The rates records store, for records without per-image outcomes.
STORED: dict[str, Callable[[Model], Optional[float]]] = {
    "test_error": lambda m: m.record.get(records.TEST_ERROR),
    "off_manifold_success": _stored_rate(lambda a: a.off, "success"),
    "off_manifold_success_any": _stored_rate(lambda a: a.off, "success_any"),
    "off_manifold_paper_success": _stored_rate(lambda a: a.off, "success"),
    "off_manifold_cross_check_success": _stored_rate(lambda a: a.cross_check, "success"),
    "on_manifold_success": _stored_rate(lambda a: a.on_rates(), "success"),
    "on_manifold_success_any": _stored_rate(lambda a: a.on_rates(), "success_any"),
}


def _restarts(reduce: Callable) -> Callable[[np.ndarray], np.ndarray]:
  return lambda success: reduce(success.astype(np.float64), axis=0)


def _attack_rows(arrays: dict, prefix: str, size: int) -> np.ndarray:
  """The test rows of an attack's arrays: "<prefix>_rows" when written (stratified rows), else
  the first `size` test rows (the layout of records without it)."""
  rows = arrays.get(f"{prefix}_rows")
  return np.arange(size) if rows is None else np.asarray(rows)


def _off_aligned(reduce: Callable, combined: bool = True):
  """The regular attack's outcome on every attacked row, counted where correctly classified."""
  def read(o: dict):
    name = "off_combined_success" if combined and "off_combined_success" in o else "off_success"
    if name not in o:
      return None
    y = _restarts(reduce)(o[name])
    return y, o["off_correct"].astype(bool), _attack_rows(o, "off", y.size)
  return read


def _cross_aligned(o: dict):
  if "off_cross_success" not in o:
    return None
  y = o["off_cross_success"].astype(np.float64)
  return y, o["off_correct"].astype(bool), _attack_rows(o, "off", y.size)


def _on_aligned(reduce: Callable):
  """The on-manifold outcome (first kind) on every row, counted where evaluated and correct."""
  def read(o: dict):
    kind = records.on_kind(o)
    if kind is None:
      return None
    p = records.on_prefix(kind)
    y = _restarts(reduce)(o[f"{p}_success"])
    counted = o[f"{p}_evaluated"].astype(bool) & o[f"{p}_correct"].astype(bool)
    return y, counted, _attack_rows(o, p, y.size)
  return read


def _test_aligned(o: dict):
  y = records.test_error(o)
  return None if y is None else (y, np.ones(y.size, bool), np.arange(y.size))


# Per image over every row the metric's attack saw: (outcome [n], counted bool [n], rows [n]).
ALIGNED: dict[str, Callable[[dict], Optional[tuple]]] = {
    "test_error": _test_aligned,
    "off_manifold_success": _off_aligned(np.mean),
    "off_manifold_success_any": _off_aligned(np.max),
    "off_manifold_paper_success": _off_aligned(np.mean, combined=False),
    "off_manifold_cross_check_success": _cross_aligned,
    "on_manifold_success": _on_aligned(np.mean),
    "on_manifold_success_any": _on_aligned(np.max),
}


def font_count(models: list[Model]) -> Optional[int]:
  """F, the number of fonts of the FONTS split the models were evaluated on, when every record
  names the same one (record field "fonts": {"count", "digest"}); else None."""
  counts = {(m.record.get("fonts") or {}).get("count") for m in models}
  return counts.pop() if len(counts) == 1 and None not in counts else None


@dataclasses.dataclass(frozen=True)
class SeedTable:
  """The aligned outcomes of S seeds on the same n rows: outcomes, counted [S, n], clusters [n]
  (the font of each row; None: images independent) and the note on what was assumed."""
  outcomes: np.ndarray
  counted: np.ndarray
  clusters: Optional[np.ndarray]
  rows: np.ndarray
  note: str = ""


NOT_ALIGNED = "images taken as independent: the seeds' per-image arrays cover different rows"
NO_FONT_COUNT = ("images taken as independent: the records name no font count F (record field "
                 '"fonts"), so rows cannot be grouped by font')


def seed_table(models: list[Model], metric: str) -> Optional[SeedTable]:
  """The seeds' outcomes on the same rows (None when some model lacks them; seeds without a
  counted row are left out), or a SeedTable with a note when the rows differ (outcomes empty)."""
  read = [ALIGNED[metric](m.outcomes) for m in models]
  if not read or any(r is None for r in read):
    return None
  read = [r for r in read if r[1].any()]
  if not read:
    return None
  rows = read[0][2]
  if any(r[2].shape != rows.shape or np.any(r[2] != rows) for r in read):
    return SeedTable(np.zeros((0, 0)), np.zeros((0, 0), bool), None, rows, NOT_ALIGNED)
  fonts = font_count(models)
  fonts_run = any(records.on_kind(m.outcomes) == "true" or "fonts" in m.record for m in models)
  clusters = (rows // 10) % fonts if fonts else None
  note = NO_FONT_COUNT if fonts_run and not fonts else ""
  return SeedTable(np.stack([r[0] for r in read]), np.stack([r[1] for r in read]), clusters,
                   rows, note)


def per_image(models: list[Model], metric: str) -> Optional[list[np.ndarray]]:
  """One array of per-image outcomes per model (None unless every model has them; models whose
  array is empty, e.g. no correctly classified input, are left out)."""
  arrays = [PER_IMAGE[metric](m.outcomes) for m in models]
  if not arrays or any(a is None for a in arrays):
    return None
  return [a for a in arrays if a.size] or None


def stored(models: list[Model], metric: str) -> list[float]:
  """The stored rate `metric` of each model that has one."""
  values = [STORED[metric](m) for m in models]
  return [v for v in values if v is not None and not math.isnan(v)]


def measure(models: list[Model], metric: str) -> Optional[Measure]:
  """The rate `metric` over `models`, or None when not measured: the mean of the seeds' rates
  with the seed-level interval (2 or more seeds on the same rows), else pooled over images and
  seeds with the image-level interval (stats.rate_interval)."""
  table = seed_table(models, metric)
  if table is not None and len(table.outcomes) >= 2:
    interval = stats.seed_rate_interval(table.outcomes, table.counted, table.clusters)
    return Measure(interval.estimate, interval, len(table.outcomes), table.note)
  arrays = per_image(models, metric)
  if arrays is not None:
    interval = stats.rate_interval(arrays)
    return Measure(interval.estimate, interval, len(arrays), table.note if table else "")
  values = stored(models, metric)
  return Measure(float(np.mean(values)), None, len(values)) if values else None


def difference(a: list[Model], b: list[Model], metric: str, paired: bool) -> Optional[Measure]:
  """mean(metric of b) - mean(metric of a), with a paired (same images) or unpaired interval."""
  seeds = min(len(a), len(b))
  table_a, table_b = seed_table(a, metric), seed_table(b, metric)
  tables = [t for t in (table_a, table_b) if t is not None]
  seeded = len(tables) == 2 and min(len(t.outcomes) for t in tables) >= 2
  if seeded and np.array_equal(table_a.rows, table_b.rows):
    interval = stats.seed_difference_interval(
        table_a.outcomes, table_b.outcomes, table_a.counted, table_b.counted, table_a.clusters)
    return Measure(interval.estimate, interval, seeds, table_a.note or table_b.note)
  note = next((t.note for t in tables if t.note), NOT_ALIGNED if seeded else "")
  arrays_a, arrays_b = per_image(a, metric), per_image(b, metric)
  if arrays_a is not None and arrays_b is not None:
    fn = stats.difference_interval if paired else stats.unpaired_difference_interval
    interval = fn(arrays_a, arrays_b)
    return Measure(interval.estimate, interval, seeds, note)
  values_a, values_b = stored(a, metric), stored(b, metric)
  if not values_a or not values_b:
    return None
  return Measure(float(np.mean(values_b) - np.mean(values_a)), None, seeds)


def setting_measures(models: list[Model], metric: str) -> dict[str, dict[int, Measure]]:
  """{variant: {n: Measure}} of `metric`, pooled over the seeds of each setting."""
  table: dict[str, dict[int, Measure]] = {}
  for variant in sorted({m.key.variant for m in models}):
    for n, ms in by_setting(models, variant).items():
      m = measure(ms, metric)
      if m is not None:
        table.setdefault(variant, {})[n] = m
  return table


def share(arrays: dict, prefix: str, part: str = "leaving_sq") -> Optional[Measure]:
  """A claim-1 ratio sum(<prefix><part>) / sum(<prefix>perturbation_sq) over the images with a
  perturbation of distances/outcomes.npz's `arrays`: part "leaving_sq", the projection-based
  residual ratio; prefix "<kind>_[random_|on_]tangent_" and part "normal_sq", the true share."""
  leaving, total = arrays.get(prefix + part), arrays.get(prefix + "perturbation_sq")
  if leaving is None or total is None:
    return None
  kept = total > 0
  if not np.any(kept):  # No example of this kind (e.g. no on-manifold success): no share.
    return None
  interval = stats.ratio_interval(leaving[kept], total[kept])
  return Measure(interval.estimate, interval, 1)


# Claim 1's true shares (dmr.distances.tangent_space_parts, prefixed "<kind>_"): the regular
# perturbations', a random direction's and the on-manifold perturbations'.
TRUE_SHARES = (("regular perturbations", ""), ("random directions", "random_"),
               ("on-manifold perturbations", "on_"))


def true_shares(arrays: dict, kind: str) -> dict[str, Measure]:
  """{label: share} of the parts orthogonal to the tangent space, of each TRUE_SHARES entry whose
  arrays <kind>_<ref>tangent_normal_sq and _perturbation_sq exist; {} for older runs."""
  shares = {label: share(arrays, f"{kind}_{ref}tangent_", "normal_sq")
            for label, ref in TRUE_SHARES}
  return {label: m for label, m in shares.items() if m is not None}
