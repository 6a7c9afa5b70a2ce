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


# ---- Seed-level intervals, Holm, allocation ------------------------------------------------------


def test_seed_rate_interval_is_the_t_interval_of_seed_rates_without_shared_images():
  """Every image of a seed gives that seed's rate: no image part, so the interval is the t
  interval of the seeds' rates with seeds - 1 degrees of freedom."""
  rates = np.array([0.2, 0.3, 0.25, 0.35])
  outcomes = np.repeat(rates[:, None], 50, axis=1)  # every image of a seed gives its rate
  i = stats.seed_rate_interval(outcomes)
  half = 3.182446 * rates.std(ddof=1) / 2  # t(0.975, 3) * SD / sqrt(4)
  assert i.estimate == pytest.approx(0.275)
  assert (i.lo, i.hi) == pytest.approx((0.275 - half, 0.275 + half), rel=1e-6)
  assert i.df == pytest.approx(3)


def test_seed_rate_interval_counts_only_the_counted_images():
  outcomes = np.array([[1, 0, 1, 1], [0, 0, 1, 1], [1, 1, 1, 0]], float)
  counted = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 1, 1, 1]], float)
  i = stats.seed_rate_interval(outcomes, counted)
  assert i.estimate == pytest.approx(np.mean([1 / 2, 2 / 4, 2 / 3]))
  assert i.lo < i.estimate < i.hi


def test_seed_intervals_refuse_one_seed():
  with pytest.raises(ValueError, match="at least 2 seeds"):
    stats.seed_rate_interval(np.ones((1, 10)))


def test_font_clusters_widen_the_interval_of_clustered_outcomes():
  """Ten images per font, each font all right or all wrong, the same for every seed: resampled
  as fonts, the interval is sqrt(10) wider than as images (up to the G / (G - 1) factors)."""
  rng = np.random.default_rng(0)
  font_outcome = rng.random(30) < 0.4
  outcomes = np.repeat(font_outcome, 10)[None].repeat(3, axis=0).astype(float)
  images = stats.seed_rate_interval(outcomes)
  fonts = stats.seed_rate_interval(outcomes, clusters=np.repeat(np.arange(30), 10))
  ratio = (fonts.hi - fonts.lo) / (images.hi - images.lo)
  assert ratio == pytest.approx(np.sqrt(10 * 30 / 29 * 299 / 300), rel=1e-9)


def test_paired_seed_difference_is_the_interval_of_per_seed_differences():
  a = np.array([[0.0] * 10, [1.0] * 10, [0.0] * 10])
  b = a + np.array([0.1, 0.3, 0.2])[:, None]
  i = stats.seed_difference_interval(a, b, paired_seeds=True)
  assert i.estimate == pytest.approx(0.2)
  assert (i.lo, i.hi) == pytest.approx((0.2 - 4.302653 * 0.1 / np.sqrt(3),
                                        0.2 + 4.302653 * 0.1 / np.sqrt(3)), rel=1e-6)


@pytest.mark.parametrize("p, adjusted", [
    ([0.01, 0.04, 0.03], [0.03, 0.06, 0.06]),       # 3 x 0.01, then max(2 x 0.03, .), 1 x 0.04
    ([0.5, 0.001], [0.5, 0.002]),
    ([0.02, 0.02, 0.9], [0.06, 0.06, 0.9]),
])
def test_holm_adjusted_p_values(p, adjusted):
  assert stats.holm_adjusted(p) == pytest.approx(adjusted)


def test_holm_rejects_step_down():
  # Bonferroni (0.05 / 3) rejects only the first; Holm also the second (0.02 <= 0.05 / 2).
  assert stats.holm_rejected([0.01, 0.02, 0.2]).tolist() == [True, True, False]
  assert stats.holm_rejected([0.02, 0.03, 0.04]).tolist() == [False, False, False]


def test_allocate_spends_on_seeds_when_seeds_vary_and_on_images_when_images_do():
  costly_seeds = stats.allocate(seed_sd=0.001, image_sd=0.3, noise_sd=0.3, model_minutes=1,
                                image_minutes=0.001, budget_minutes=30, max_images=10_000)
  varying_seeds = stats.allocate(seed_sd=0.05, image_sd=0.01, noise_sd=0.3, model_minutes=1,
                                 image_minutes=0.001, budget_minutes=30, max_images=10_000)
  assert costly_seeds.seeds == 3 and costly_seeds.images > 5000
  assert varying_seeds.seeds > 10
  assert costly_seeds.minutes <= 30 and varying_seeds.minutes <= 30
