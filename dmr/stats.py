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
# An existence claim (claim 4): one configuration shows it; none at the configurations run does
# not refute it.
SHOWN, NOT_SHOWN = "shown", "not shown at these configurations"


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
  """A claim's verdict: `status` is held / not held / inconclusive / not measured (an existence
  claim: shown / not shown at these configurations); `interval` the
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


# ---- Seed-level inference (docs/statistics.md) ---------------------------------------------------
#
# A seed (one trained model) is the unit of replication; its images are shared with the other
# seeds (every model is evaluated on the same test rows). A rate's estimate is the mean over seeds
# of each seed's rate; its variance has a seed, a column (image, or font cluster) and a noise
# component, estimated by the two-way ANOVA identities of a crossed design and turned into a
# t interval with Satterthwaite's degrees of freedom.


@dataclasses.dataclass(frozen=True)
class SeedInterval(Interval):
  """A t interval: `se` the estimate's standard error, `df` Satterthwaite's degrees of freedom."""
  se: float = float("nan")
  df: float = float("nan")

  def p_value(self, null: float = 0.0) -> float:
    """Two-sided p-value of the estimate against `null` (1 when se is 0 and estimate == null)."""
    if self.se == 0:
      return 0.0 if self.estimate != null else 1.0
    return float(2 * scipy_stats.t.sf(abs(self.estimate - null) / self.se, self.df))


def linearized_table(outcomes, counted=None, clusters=None) -> np.ndarray:
  """The table X [..., S, G] whose seed totals X.sum(-1) are the seeds' rates and whose columns
  are the G clusters of images (one column per image without `clusters`).

  outcomes: [..., S, n] per-image outcomes of S seeds on the same n test rows; counted: [..., S, n]
  0/1, whether the outcome enters seed s's rate (e.g. correctly classified before the attack),
  None: every one; clusters: int [n] cluster (e.g. font) of each row. A seed's rate is
  r_s = sum_i y_si c_si / sum_i c_si; its image i enters as r_s + (y_si - r_s) c_si / mean_i(c_si)
  (the ratio's linearization, exact for c = 1), divided by n so that a row sums to r_s.
  """
  y = np.asarray(outcomes, np.float64)
  if y.ndim < 2 or y.shape[-1] == 0:
    raise ValueError(f"need outcomes [seeds, images] with at least one image, got {y.shape}")
  if counted is None:
    table = y / y.shape[-1]
  else:
    c = np.broadcast_to(np.asarray(counted, np.float64), y.shape)
    share = c.mean(-1, keepdims=True)
    if np.any(share == 0):
      raise ValueError("every seed needs at least one counted image; leave out the seeds "
                       "without one")
    rate = (y * c).sum(-1, keepdims=True) / c.sum(-1, keepdims=True)
    table = (rate + (y - rate) * c / share) / y.shape[-1]
  if clusters is None:
    return table
  clusters = np.asarray(clusters)
  if clusters.shape != y.shape[-1:]:
    raise ValueError(f"need one cluster per image ({y.shape[-1]}), got {clusters.shape}")
  _, column = np.unique(clusters, return_inverse=True)
  summed = np.zeros(table.shape[:-1] + (column.max() + 1,))
  np.add.at(summed, (..., column), table)
  return summed


def _components(table: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """(seed term, column means [..., G], noise term, estimate) of a table [..., S, G]:
  the seed term var_s(row totals) / S estimates sigma_seed^2 / S + noise / S; the noise term,
  the interaction's mean square times G / S, the part of it that the column term repeats."""
  seeds, columns = table.shape[-2:]
  totals = table.sum(-1)
  column_means = table.mean(-2)
  seed_term = totals.var(-1, ddof=1) / seeds
  residual = (table - column_means[..., None, :]
              - (totals - totals.mean(-1, keepdims=True))[..., None] / columns)
  noise = ((residual**2).sum((-2, -1)) / ((seeds - 1) * max(columns - 1, 1)) * columns / seeds)
  return seed_term, column_means, noise, totals.mean(-1)


def _column_term(column_means: np.ndarray) -> np.ndarray:
  """G / (G - 1) sum_g (mean_g - their mean)^2: the variance the shared columns contribute."""
  columns = column_means.shape[-1]
  centred = column_means - column_means.mean(-1, keepdims=True)
  return (centred**2).sum(-1) * columns / max(columns - 1, 1)


# The degrees of freedom nu = k (1 + a rho)^2 of a t interval whose variance is a seed term A with
# k degrees of freedom plus a precisely estimated shared part rho A: Satterthwaite's (a = 1) is
# liberal when A is small by chance (87% coverage at k = 1); a, by simulation of that model
# (docs/statistics.md#degrees-of-freedom), keeps the coverage within [93, 97]% at every rho.
DF_SHRINK_ONE_DF, DF_SHRINK = 0.15, 0.3


def _t_interval(estimate, seed_terms, seed_dfs, column_term, noise_terms, confidence: float):
  """(estimate, lo, hi, se, df) arrays from the variance terms: seed terms (each with its
  degrees of freedom), the column term and the noise terms both repeat. The variance,
  sum(seed) + column - sum(noise), is floored at max(sum(seed), column), the least each of them
  exceeds it by in expectation."""
  seeds = sum(seed_terms)
  variance = np.maximum(seeds + column_term - sum(noise_terms), np.maximum(seeds, column_term))
  spread = sum(t**2 / k for t, k in zip(seed_terms, seed_dfs))
  k = np.where(spread > 0, seeds**2 / np.where(spread > 0, spread, 1), max(seed_dfs))
  between = np.maximum(seeds - sum(noise_terms), 0)  # the seeds' own part, net of image noise
  shared = np.where(between > 0, (variance - between) / np.where(between > 0, between, 1), np.inf)
  shrink = np.where(k < 1.5, DF_SHRINK_ONE_DF, DF_SHRINK)
  df = np.maximum(k * (1 + shrink * shared)**2, min(seed_dfs))
  se = np.sqrt(variance)
  half = scipy_stats.t.ppf(0.5 + confidence / 2, df) * se
  return estimate, estimate - half, estimate + half, se, df


def _check_seeds(table: np.ndarray, what: str) -> None:
  if table.shape[-2] < 2:
    raise ValueError(f"{what} needs at least 2 seeds (models) per setting, got "
                     f"{table.shape[-2]}: with one the spread between training runs is unknown")


def seed_rate_bounds(table: np.ndarray, confidence: float = CONFIDENCE):
  """Vectorised `seed_rate_interval` on linearized tables [..., S, G]: (estimate, lo, hi, se,
  df), each [...]."""
  _check_seeds(table, "a seed-level interval")
  seeds = table.shape[-2]
  seed_term, column_means, noise, estimate = _components(table)
  return _t_interval(estimate, (seed_term,), (seeds - 1,), _column_term(column_means), (noise,),
                     confidence)


def seed_difference_bounds(table_a: np.ndarray, table_b: np.ndarray, paired_seeds: bool = False,
                           confidence: float = CONFIDENCE):
  """Vectorised `seed_difference_interval` on linearized tables [..., S_a, G] and [..., S_b, G]
  of the same columns: (estimate, lo, hi, se, df) of mean_b - mean_a."""
  if table_a.shape[-1] != table_b.shape[-1]:
    raise ValueError(f"both groups need the same test rows, got {table_a.shape[-1]} and "
                     f"{table_b.shape[-1]} columns")
  if paired_seeds:
    if table_a.shape != table_b.shape:
      raise ValueError(f"seeds paired by seed need as many seeds in both groups, got "
                       f"{table_a.shape[-2]} and {table_b.shape[-2]}")
    return seed_rate_bounds(table_b - table_a, confidence)
  _check_seeds(table_a, "a seed-level interval")
  _check_seeds(table_b, "a seed-level interval")
  seed_a, means_a, noise_a, estimate_a = _components(table_a)
  seed_b, means_b, noise_b, estimate_b = _components(table_b)
  return _t_interval(estimate_b - estimate_a, (seed_a, seed_b),
                     (table_a.shape[-2] - 1, table_b.shape[-2] - 1),
                     _column_term(means_b - means_a), (noise_a, noise_b), confidence)


def _seed_interval(bounds) -> SeedInterval:
  return SeedInterval(*(float(v) for v in bounds))


def seed_rate_interval(outcomes, counted=None, clusters=None,
                       confidence: float = CONFIDENCE) -> SeedInterval:
  """t interval of the mean over S >= 2 seeds of each seed's rate.

  outcomes: [S, n] per-image outcomes (0/1 or a share of restarts) of every seed on the same n
  test rows; counted: [S, n] 0/1, whether each enters its seed's rate (None: all); clusters:
  int [n], the unit images are drawn in (FONTS: the row's font; None: the image). The interval
  covers the spread between training runs and between images (docs/statistics.md).
  """
  return _seed_interval(seed_rate_bounds(linearized_table(outcomes, counted, clusters),
                                         confidence))


def seed_difference_interval(outcomes_a, outcomes_b, counted_a=None, counted_b=None,
                             clusters=None, paired_seeds: bool = False,
                             confidence: float = CONFIDENCE) -> SeedInterval:
  """t interval of mean_b - mean_a, each the mean over its seeds of their rates on the SAME n
  test rows (outcomes [S_a, n], [S_b, n]; counted and clusters as in `seed_rate_interval`).

  paired_seeds: seed s of a and of b share a training run's randomness (then S_a == S_b and the
  interval is that of the per-seed differences); otherwise the groups' seeds are independent.
  """
  a = linearized_table(outcomes_a, counted_a, clusters)
  b = linearized_table(outcomes_b, counted_b, clusters)
  return _seed_interval(seed_difference_bounds(a, b, paired_seeds, confidence))


# ---- Several sizes: Holm's step-down -------------------------------------------------------------


def holm_adjusted(p_values: Sequence[float]) -> np.ndarray:
  """Holm's adjusted p-values [m] of m tests, in their order: the j-th smallest p times (m - j + 1),
  made monotone and capped at 1. A test is rejected at family-wise level alpha when its adjusted
  p-value is <= alpha."""
  p = np.asarray(p_values, np.float64)
  if p.ndim != 1 or np.any((p < 0) | (p > 1)):
    raise ValueError(f"need a list of p-values in [0, 1], got {p_values}")
  order = np.argsort(p, kind="stable")
  scaled = np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p))))
  adjusted = np.empty_like(p)
  adjusted[order] = np.minimum(scaled, 1.0)
  return adjusted


def holm_rejected(p_values: Sequence[float], alpha: float = 1 - CONFIDENCE) -> np.ndarray:
  """bool [m]: which of the m tests Holm's step-down rejects at family-wise level alpha."""
  return holm_adjusted(p_values) <= alpha


# ---- Presets sized by power (docs/statistics.md, Allocation) -------------------------------------


@dataclasses.dataclass(frozen=True)
class Allocation:
  """seeds and images per setting, the expected 95% half-width and the CPU minutes they cost."""
  seeds: int
  images: int
  half_width: float
  minutes: float


def expected_half_width(seeds: int, images: int, seed_sd: float, image_sd: float,
                        noise_sd: float, confidence: float = CONFIDENCE) -> float:
  """The expected half-width of `seed_rate_interval` at `seeds` models x `images` shared images:
  t quantile (seeds - 1 degrees of freedom, Satterthwaite against the image part) times
  sqrt(seed_sd^2 / S + image_sd^2 / n + noise_sd^2 / (n S)); the SDs are of one seed's rate
  (seed_sd), of one image's expected outcome (image_sd) and of one outcome about it (noise_sd)."""
  seed_part = seed_sd**2 / seeds + noise_sd**2 / (images * seeds)
  variance = seed_part + image_sd**2 / images
  df = (seeds - 1) * (variance / seed_part)**2
  return float(scipy_stats.t.ppf(0.5 + confidence / 2, df) * np.sqrt(variance))


def allocate(seed_sd: float, image_sd: float, noise_sd: float, model_minutes: float,
             image_minutes: float, budget_minutes: float, max_images: int,
             min_seeds: int = 3, confidence: float = CONFIDENCE) -> Allocation:
  """The seeds (>= min_seeds) and images (<= max_images, the attacked test rows available) of
  one setting with the narrowest expected interval (`expected_half_width`) within
  budget_minutes, each seed costing model_minutes (training) plus images x image_minutes
  (attacking). Raises ValueError when min_seeds models do not fit the budget."""
  best = None
  for seeds in range(min_seeds, int(budget_minutes // model_minutes) + 1):
    images = min(max_images, int((budget_minutes / seeds - model_minutes) // image_minutes))
    if images < 1:
      break
    width = expected_half_width(seeds, images, seed_sd, image_sd, noise_sd, confidence)
    if best is None or width < best.half_width:
      best = Allocation(seeds, images, width, seeds * (model_minutes + images * image_minutes))
  if best is None:
    raise ValueError(f"{min_seeds} models of {model_minutes} min do not fit {budget_minutes} min; "
                     "raise the budget")
  return best
