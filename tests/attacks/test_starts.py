"""Random starts: inside the ball, uniform or the paper's law, stable under more restarts."""
import functools

import jax
import numpy as np
import pytest

from dmr.attacks import starts

EPS = 0.5
NORMS = ("linf", "l2", "l1")


def _radius(sample, norm):
  """||row|| / EPS of each row of sample [N, ...], in numpy."""
  flat = np.asarray(sample).reshape(len(sample), -1)
  return np.linalg.norm(flat, ord={"linf": np.inf, "l2": 2, "l1": 1}[norm], axis=1) / EPS


@functools.cache
def _samples():
  """{norm: (uniform starts, paper starts)} in one compiled call; uniform [20000, 2, 3]."""
  def sample(key):
    return {norm: (starts.uniform_in_ball(key, (20000, 2, 3), EPS, norm),
                   starts.paper_start(key, (20000, 5), EPS, norm)) for norm in NORMS}
  return jax.jit(sample)(jax.random.key(0))


@pytest.mark.parametrize("norm", NORMS)
def test_uniform_start_is_uniform_in_the_ball(norm):
  dim = 6
  sample = _samples()[norm][0]
  radius = _radius(sample, norm)
  assert radius.max() <= 1 + 1e-6
  # Uniform in a D-dimensional ball of any norm: P(radius <= r) = r^D, so E[radius] = D / (D + 1).
  np.testing.assert_allclose(radius.mean(), dim / (dim + 1), atol=0.01)
  np.testing.assert_allclose(np.mean(radius <= 0.9), 0.9**dim, atol=0.015)
  # Symmetric: every coordinate has mean 0.
  np.testing.assert_allclose(np.asarray(sample).reshape(-1, dim).mean(0), 0, atol=0.01)


@pytest.mark.parametrize("norm", NORMS)
def test_paper_start_has_radius_eps_times_uniform(norm):
  radius = _radius(_samples()[norm][1], norm)
  assert radius.max() <= 1 + 1e-6
  np.testing.assert_allclose(np.mean(radius <= 0.3), 0.3, atol=0.015)


def test_restart_r_does_not_depend_on_the_number_of_restarts():
  sample = lambda init, restarts: starts.restart_perturbations(jax.random.key(2), (4, 3), EPS,
                                                               "l2", init, restarts)
  one, four, zero = jax.jit(lambda: (sample("paper", 1), sample("paper", 4), sample("zero", 2)))()
  assert four.shape == (4, 4, 3)
  np.testing.assert_array_equal(one[0], four[0])
  assert not np.allclose(four[0], four[1])
  np.testing.assert_array_equal(zero, np.zeros((2, 4, 3)))
