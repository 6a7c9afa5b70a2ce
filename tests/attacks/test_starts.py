"""Random starts: inside the ball, the right distribution, restart keys stable under more restarts."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmr.attacks import projections, starts

EPS = 0.5


@pytest.mark.parametrize("norm", projections.NORMS)
def test_uniform_start_is_uniform_in_the_ball(norm):
  dim = 6
  sample = starts.uniform_in_ball(jax.random.key(0), (20000, 2, 3), EPS, norm)
  radius = np.asarray(projections.lp_norm(sample, norm)) / EPS
  assert radius.max() <= 1 + 1e-6
  # Uniform in a D-dimensional ball of any norm: P(radius <= r) = r^D, so E[radius] = D / (D + 1).
  np.testing.assert_allclose(radius.mean(), dim / (dim + 1), atol=0.01)
  np.testing.assert_allclose(np.mean(radius <= 0.9), 0.9**dim, atol=0.015)
  # Symmetric: every coordinate has mean 0.
  np.testing.assert_allclose(np.asarray(sample).reshape(-1, dim).mean(0), 0, atol=0.01)


@pytest.mark.parametrize("norm", projections.NORMS)
def test_paper_start_has_radius_eps_times_uniform(norm):
  sample = starts.paper_start(jax.random.key(1), (20000, 5), EPS, norm)
  radius = np.asarray(projections.lp_norm(sample, norm)) / EPS
  assert radius.max() <= 1 + 1e-6
  np.testing.assert_allclose(np.mean(radius <= 0.3), 0.3, atol=0.015)


def test_restart_r_does_not_depend_on_the_number_of_restarts():
  one = starts.restart_perturbations(jax.random.key(2), (4, 3), EPS, "l2", "paper", 1)
  four = starts.restart_perturbations(jax.random.key(2), (4, 3), EPS, "l2", "paper", 4)
  assert four.shape == (4, 4, 3)
  np.testing.assert_array_equal(one[0], four[0])
  assert not np.allclose(four[0], four[1])
  zero = starts.restart_perturbations(jax.random.key(2), (4, 3), EPS, "l2", "zero", 2)
  np.testing.assert_array_equal(zero, jnp.zeros((2, 4, 3)))
