"""Per-image outcomes -> Measures: a quantity's point value over models with its 95% interval
(dmr.stats), or the rates the records stored (no interval) for records without outcomes."""
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
  """The rate `metric` pooled over `models` (images and seeds), or None when not measured."""
  arrays = per_image(models, metric)
  if arrays is not None:
    interval = stats.rate_interval(arrays)
    return Measure(interval.estimate, interval, len(arrays))
  values = stored(models, metric)
  return Measure(float(np.mean(values)), None, len(values)) if values else None


def difference(a: list[Model], b: list[Model], metric: str, paired: bool) -> Optional[Measure]:
  """mean(metric of b) - mean(metric of a), with a paired (same images) or unpaired interval."""
  arrays_a, arrays_b = per_image(a, metric), per_image(b, metric)
  seeds = min(len(a), len(b))
  if arrays_a is not None and arrays_b is not None:
    fn = stats.difference_interval if paired else stats.unpaired_difference_interval
    interval = fn(arrays_a, arrays_b)
    return Measure(interval.estimate, interval, seeds)
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


def share(arrays: dict, prefix: str) -> Optional[Measure]:
  """Claim 1's share, sum(<prefix>leaving_sq) / sum(<prefix>perturbation_sq), over the images
  with a perturbation of distances/outcomes.npz's `arrays`."""
  leaving, total = arrays.get(prefix + "leaving_sq"), arrays.get(prefix + "perturbation_sq")
  if leaving is None or total is None:
    return None
  kept = total > 0
  if not np.any(kept):  # No example of this kind (e.g. no on-manifold success): no share.
    return None
  interval = stats.ratio_interval(leaving[kept], total[kept])
  return Measure(interval.estimate, interval, 1)
