"""Intervals against known binomial cases, and the three verdict branches."""
import numpy as np
import pytest

from dmr import stats


@pytest.mark.parametrize("successes, trials, lo, hi", [
    (0, 10, 0.0, 0.27753),    # upper bound z^2 / (n + z^2)
    (10, 10, 0.72247, 1.0),
    (5, 10, 0.23659, 0.76341),
])
def test_wilson_interval_matches_closed_form(successes, trials, lo, hi):
  i = stats.wilson_interval(successes, trials)
  assert i.estimate == pytest.approx(successes / trials)
  assert (i.lo, i.hi) == pytest.approx((lo, hi), abs=2e-5)


@pytest.mark.parametrize("successes, trials", [(1, 7), (81, 263), (990, 1000)])
def test_wilson_interval_matches_scipy(successes, trials):
  from scipy.stats import binomtest
  reference = binomtest(successes, trials).proportion_ci(0.95, method="wilson")
  i = stats.wilson_interval(successes, trials)
  assert (i.lo, i.hi) == pytest.approx((reference.low, reference.high), rel=1e-9)


def test_wilson_interval_covers_the_true_rate_95_percent_of_the_time():
  rng = np.random.default_rng(1)
  counts = rng.binomial(200, 0.3, size=4000)
  covered = [stats.wilson_interval(int(c), 200).excludes(0.3) is False for c in counts]
  assert np.mean(covered) == pytest.approx(0.95, abs=0.012)


def test_wilson_interval_rejects_impossible_counts():
  with pytest.raises(ValueError, match="successes <= trials"):
    stats.wilson_interval(11, 10)


def test_rate_interval_of_one_seed_is_wilson():
  outcomes = np.r_[np.ones(30), np.zeros(70)]
  assert stats.rate_interval([outcomes]) == stats.wilson_interval(30, 100)


def test_rate_interval_widens_when_seeds_disagree():
  agree = [np.r_[np.ones(100), np.zeros(900)]] * 4
  disagree = [np.r_[np.ones(k), np.zeros(1000 - k)] for k in (20, 60, 140, 180)]
  narrow, wide = stats.rate_interval(agree), stats.rate_interval(disagree)
  assert narrow.estimate == wide.estimate == pytest.approx(0.1)
  assert wide.hi - wide.lo > 2 * (narrow.hi - narrow.lo)
  assert wide.lo < 0.06 and wide.hi > 0.14


def test_difference_interval_is_paired_over_images():
  rng = np.random.default_rng(0)
  a = [(rng.random(2000) < 0.3).astype(float) for _ in range(3)]
  # b fixes 5% of a's errors: a small effect that pairing detects and an unpaired test would not.
  b = [np.where((x == 1) & (rng.random(2000) < 0.17), 0.0, x) for x in a]
  d = stats.difference_interval(a, b)
  assert d.estimate == pytest.approx(np.mean(np.concatenate(b)) - np.mean(np.concatenate(a)))
  assert d.hi < 0 and d.lo > -0.09
  same = stats.difference_interval(a, a)
  assert same.estimate == 0 and same.lo <= 0 <= same.hi
  # One seed against itself: every shared image resample gives exactly 0 (unpaired would not).
  assert stats.difference_interval(a[:1], a[:1]) == stats.Interval(0.0, 0.0, 0.0)


def test_difference_interval_needs_the_same_images():
  with pytest.raises(ValueError, match="same images"):
    stats.difference_interval([np.zeros(10)], [np.zeros(11)])


def test_ratio_interval_is_a_ratio_of_sums():
  num, den = np.array([1.0, 3.0, 2.0, 2.0]), np.array([2.0, 2.0, 4.0, 4.0])
  i = stats.ratio_interval(num, den)
  assert i.estimate == pytest.approx(8 / 12)
  assert i.lo <= 8 / 12 <= i.hi


@pytest.mark.parametrize("lo, hi, held_above, status", [
    (0.2, 0.4, True, stats.HELD), (0.2, 0.4, False, stats.NOT_HELD),
    (-0.4, -0.2, False, stats.HELD), (-0.4, -0.2, True, stats.NOT_HELD),
    (-0.1, 0.1, True, stats.INCONCLUSIVE), (-0.1, 0.1, False, stats.INCONCLUSIVE),
])
def test_decide_has_three_outcomes(lo, hi, held_above, status):
  v = stats.decide(stats.Interval(0.5 * (lo + hi), lo, hi), 0.0, held_above=held_above,
                   what="the gap", settle="more seeds")
  assert v.status == status
  assert (v.reason != "") == (status == stats.INCONCLUSIVE)
  if status == stats.INCONCLUSIVE:
    assert "contains 0" in v.reason and v.settle == "more seeds"


def test_unpaired_difference_interval_resamples_each_arm_alone():
  rng = np.random.default_rng(2)
  a = [(rng.random(1000) < 0.4).astype(float) for _ in range(2)]
  unpaired = stats.unpaired_difference_interval(a, a)
  assert unpaired.estimate == 0 and unpaired.lo < -0.02 and unpaired.hi > 0.02
  b = [(rng.random(800) < 0.2).astype(float) for _ in range(2)]  # other images, fewer of them
  d = stats.unpaired_difference_interval(a, b)
  assert d.estimate == pytest.approx(np.concatenate(b).mean() - np.concatenate(a).mean())
  assert -0.25 < d.lo < d.hi < -0.15


def test_rate_interval_of_fractional_outcomes_matches_the_normal_approximation():
  # Shares of 2 restarts (0, 0.5, 1) on 5000 images of one seed: the bootstrap interval is
  # mean +- 1.96 sd / sqrt(n) up to resampling noise.
  x = np.random.default_rng(3).choice([0.0, 0.5, 1.0], size=5000, p=[0.6, 0.25, 0.15])
  i = stats.rate_interval([x])
  half = 1.96 * x.std() / np.sqrt(x.size)
  assert (i.lo, i.hi) == pytest.approx((x.mean() - half, x.mean() + half), abs=0.003)
