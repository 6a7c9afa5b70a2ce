"""Confidence intervals and three-valued verdicts for the claims (docs/protocol.md#claims).

Every interval is a 95% interval unless `confidence` says otherwise. Outcomes are per-image
arrays (1 = the event happened: misclassified, attack succeeded), one array per seed, so an
interval reflects both the images and the seeds:

  rate_interval([errors_seed0, errors_seed1])            # a rate over images and seeds
  difference_interval(normal_errors, on_adv_errors)      # mean(b) - mean(a), paired over images
  unpaired_difference_interval(success_small_n, success_large_n)   # mean(b) - mean(a), unpaired
  ratio_interval(numerators, denominators)               # sum(num) / sum(den) over images

With one seed a rate gets Wilson's score interval from the pooled counts; with several seeds,
and for differences and ratios, a two-level bootstrap: seeds resampled with replacement, then
images resampled with replacement (the same image indices for both arms of a paired difference,
since they are evaluated on the same test images).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from scipy import stats as scipy_stats

CONFIDENCE = 0.95
RESAMPLES = 2000
HELD, NOT_HELD, INCONCLUSIVE, NOT_MEASURED = "held", "not held", "inconclusive", "not measured"


@dataclasses.dataclass(frozen=True)
class Interval:
  """An estimate with its confidence interval [lo, hi]."""
  estimate: float
  lo: float
  hi: float

  def excludes(self, value: float) -> bool:
    return not self.lo <= value <= self.hi

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Verdict:
  """A claim's verdict: `status` is held / not held / inconclusive / not measured; `interval` the
  interval that decided it; `reason` and `settle` say why it is inconclusive and what would
  settle it (empty otherwise)."""
  status: str
  interval: Interval | None = None
  reason: str = ""
  settle: str = ""

  def as_dict(self) -> dict:
    return {"status": self.status,
            "interval": self.interval.as_dict() if self.interval else None,
            "reason": self.reason, "settle": self.settle}


def _z(confidence: float) -> float:
  return float(scipy_stats.norm.ppf(0.5 + confidence / 2))


def wilson_interval(successes: int, trials: int, confidence: float = CONFIDENCE) -> Interval:
  """Wilson's score interval of a binomial proportion successes / trials (trials >= 1)."""
  if trials < 1 or not 0 <= successes <= trials:
    raise ValueError(f"need 0 <= successes <= trials and trials >= 1, got {successes}/{trials}")
  z, p = _z(confidence), successes / trials
  centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
  half = z / (1 + z * z / trials) * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
  return Interval(p, float(max(0.0, centre - half)), float(min(1.0, centre + half)))


def _as_seed_arrays(per_seed: Sequence) -> list[np.ndarray]:
  arrays = [np.asarray(a, np.float64).reshape(-1) for a in per_seed]
  if not arrays or any(a.size == 0 for a in arrays):
    raise ValueError("need at least one seed with at least one image")
  return arrays


def _percentile_interval(estimate: float, draws: np.ndarray, confidence: float) -> Interval:
  lo, hi = np.quantile(draws, [(1 - confidence) / 2, (1 + confidence) / 2])
  return Interval(float(estimate), float(lo), float(hi))


def _seed_means(sums: np.ndarray, sizes: np.ndarray, seeds: np.ndarray) -> np.ndarray:
  """[R] pooled means of resampled seeds: sums[r, j, s] is the sum of seed s's image resample in
  slot j of resample r ([R, J, S], or [R, 1, S] when every slot shares one image resample),
  seeds [R, J] the seed drawn for each slot."""
  r, j = np.ogrid[:seeds.shape[0], :seeds.shape[1]]
  return sums[r, j if sums.shape[1] > 1 else 0, seeds].sum(1) / sizes[seeds].sum(1)


def _resampled_means(arrays: list[np.ndarray], rng: np.random.Generator,
                     resamples: int) -> np.ndarray:
  """[resamples] means over a two-level resample (seeds, then images) of `arrays`. An image
  resample's sum is drawn as a multinomial over the array's distinct values (exact, and cheap for
  0/1 outcomes and shares of a few restarts)."""
  k = len(arrays)
  sums = np.empty((resamples, k, k))
  for s, a in enumerate(arrays):
    values, counts = np.unique(a, return_counts=True)
    sums[:, :, s] = rng.multinomial(a.size, counts / a.size, size=(resamples, k)) @ values
  sizes = np.array([a.size for a in arrays], np.float64)
  return _seed_means(sums, sizes, rng.integers(0, k, size=(resamples, k)))


def rate_interval(per_seed: Sequence, confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                  seed: int = 0) -> Interval:
  """Interval of the mean of 0/1 (or fractional) per-image outcomes pooled over seeds.

  One seed of 0/1 outcomes: Wilson's interval; otherwise a two-level bootstrap."""
  arrays = _as_seed_arrays(per_seed)
  pooled = np.concatenate(arrays)
  binary = np.all((pooled == 0) | (pooled == 1))
  if len(arrays) == 1 and binary:
    return wilson_interval(int(pooled.sum()), pooled.size, confidence)
  rng = np.random.default_rng(seed)
  return _percentile_interval(pooled.mean(), _resampled_means(arrays, rng, resamples), confidence)


def difference_interval(a_per_seed: Sequence, b_per_seed: Sequence,
                        confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                        seed: int = 0) -> Interval:
  """Interval of mean(b) - mean(a), where every seed of a and b holds outcomes on the SAME images
  (paired: one image resample is shared by both arms; seeds are resampled per arm)."""
  a, b = _as_seed_arrays(a_per_seed), _as_seed_arrays(b_per_seed)
  size = a[0].size
  if any(x.size != size for x in a + b):
    raise ValueError("a paired difference needs the same images in every seed of both arms")
  rng = np.random.default_rng(seed)
  sums_a, sums_b = [], []
  for chunk in np.array_split(np.arange(resamples), max(1, resamples * size // 2_000_000)):
    images = rng.integers(0, size, size=(chunk.size, size))
    sums_a.append(np.stack([x[images].sum(1) for x in a], 1))
    sums_b.append(np.stack([x[images].sum(1) for x in b], 1))
  means = [_seed_means(np.concatenate(sums)[:, None], np.full(len(arms), float(size)),
                       rng.integers(0, len(arms), size=(resamples, len(arms))))
           for sums, arms in ((sums_a, a), (sums_b, b))]
  estimate = np.concatenate(b).mean() - np.concatenate(a).mean()
  return _percentile_interval(estimate, means[1] - means[0], confidence)


def unpaired_difference_interval(a_per_seed: Sequence, b_per_seed: Sequence,
                                 confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                                 seed: int = 0) -> Interval:
  """Interval of mean(b) - mean(a) when a and b hold outcomes on different images (e.g. the
  correctly classified ones of different models): each arm resampled on its own."""
  a, b = _as_seed_arrays(a_per_seed), _as_seed_arrays(b_per_seed)
  rng = np.random.default_rng(seed)
  draws = _resampled_means(b, rng, resamples) - _resampled_means(a, rng, resamples)
  estimate = np.concatenate(b).mean() - np.concatenate(a).mean()
  return _percentile_interval(estimate, draws, confidence)


def ratio_interval(numerators: Sequence[float], denominators: Sequence[float],
                   confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                   seed: int = 0) -> Interval:
  """Interval of sum(numerators) / sum(denominators), bootstrapped over the paired entries
  (images); denominators must be positive."""
  num, den = np.asarray(numerators, np.float64), np.asarray(denominators, np.float64)
  if num.shape != den.shape or num.size == 0 or np.any(den <= 0):
    raise ValueError("need equally many numerators and positive denominators (>= 1)")
  rng = np.random.default_rng(seed)
  idx = rng.integers(0, num.size, size=(resamples, num.size))
  draws = num[idx].sum(axis=1) / den[idx].sum(axis=1)
  return _percentile_interval(num.sum() / den.sum(), draws, confidence)


def decide(interval: Interval, threshold: float, *, held_above: bool, what: str,
           settle: str) -> Verdict:
  """held when the interval lies wholly on the claim's side of `threshold` (above it when
  held_above, else below), not held when wholly on the other side, else inconclusive with the
  reason (`what`, the quantity, straddles the threshold) and `settle`, the change that would
  narrow the interval."""
  above, below = interval.lo > threshold, interval.hi < threshold
  if above or below:
    return Verdict(HELD if above == held_above else NOT_HELD, interval)
  return Verdict(INCONCLUSIVE, interval,
                 reason=f"the 95% interval of {what} [{interval.lo:.3g}, {interval.hi:.3g}] "
                        f"contains {threshold:.3g}",
                 settle=settle)
