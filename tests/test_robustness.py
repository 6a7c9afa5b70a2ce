"""Attack outcomes: rates over correct inputs only, re-verification of every counted success, and
the per-image arrays of dmr.outcomes."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmr import parallel, records, robustness
from dmr.manifolds import OnManifold


def first_pixel_logits(x):
  """Class 1 when the first pixel exceeds 0.5, else class 0."""
  p = x.reshape(x.shape[0], -1)[:, 0]
  return jnp.stack([0.5 - p, p - 0.5], axis=1)


LOGITS = jax.tree_util.Partial(first_pixel_logits)


def images(first_pixels):
  x = np.full((len(first_pixels), 2, 2, 1), 0.2, np.float32)
  x[:, 0, 0, 0] = first_pixels
  return x


def test_rates_count_only_correctly_classified_inputs():
  success = np.array([[1, 1], [1, 0], [0, 0], [1, 1]], bool)  # [B, R]
  correct = np.array([True, True, True, False])
  r = robustness.rates(success, correct)
  # 3 correct inputs x 2 restarts; the misclassified 4th input's successes do not count.
  assert (r.success, r.evaluated, r.correct) == (3 / 6, 4, 3)
  assert r.success_any == pytest.approx(2 / 3)


def test_verification_drops_successes_whose_example_is_not_adversarial():
  mesh = parallel.data_mesh()
  x = images([0.3, 0.3, 0.3, 0.3, 0.3])
  x_adv = images([0.7, 0.45, 0.9, 0.7, np.nan])  # fooled / not fooled / outside eps / / NaN
  x_adv[3, 1, 1, 0] = 1.5  # outside the box
  y = np.zeros(5, np.int32)
  claimed = np.ones((5, 2), bool)
  outcome = robustness.verified_outcome(LOGITS, x_adv, y, np.ones(5, bool), claimed,
                                        robustness.within_ball(x, x_adv, 0.45), 5, mesh)
  np.testing.assert_array_equal(outcome.success.any(axis=1), [True, False, False, False, False])
  assert (outcome.verified, outcome.rejected) == (1, 4)
  assert outcome.rates.success == pytest.approx(1 / 5)


def test_off_manifold_outcome_is_verified_and_counts_correct_inputs():
  mesh = parallel.data_mesh()
  x = images([0.3, 0.1, 0.7, 0.45])  # correct, correct (too far to flip), wrong label, correct
  y = np.array([0, 0, 0, 0], np.int32)
  spec = robustness.attacks.AttackSpec(eps=0.3, steps=5, restarts=2, early_stop=True)
  outcome, x_adv = robustness.off_manifold_outcome(LOGITS, x, y, spec, jax.random.key(0), 4, mesh)
  np.testing.assert_array_equal(outcome.correct, [True, True, False, True])
  np.testing.assert_array_equal(outcome.success.any(axis=1), [True, False, True, True])
  assert outcome.verified == 2 and outcome.rejected == 0  # The wrong input is not counted.
  assert outcome.rates.success == pytest.approx(2 / 3) and outcome.rates.correct == 3
  assert np.max(np.abs(x_adv - x)) <= 0.3 + 1e-6


def test_on_manifold_arrays_scatter_the_evaluated_rows():
  rows = np.arange(6)
  on = OnManifold(rows=np.array([1, 4]), x_on=None, x_adv=None, success=None, z=None, z_adv=None)
  outcome = robustness.Outcome(np.array([True, False]), np.array([[True, False], [True, True]]),
                               2, 0)
  arrays = records.on_arrays("learned", rows, on, outcome)
  np.testing.assert_array_equal(arrays["on_learned_evaluated"], [0, 1, 0, 0, 1, 0])
  np.testing.assert_array_equal(arrays["on_learned_correct"], [0, 1, 0, 0, 0, 0])
  np.testing.assert_array_equal(arrays["on_learned_success"],
                                [[0, 1, 0, 0, 1, 0], [0, 0, 0, 0, 1, 0]])
  fields = records.AttackRates.of(outcome).fields("on_learned")
  assert fields["on_learned_success_per_restart"] == [1, 0]
  assert fields["on_learned_success"] == pytest.approx(1 / 2) and fields["on_learned_verified"] == 2
