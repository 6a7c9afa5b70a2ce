"""Ball and box projections: feasibility, exactness against brute force, the alternating rule."""
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmr.attacks import projections


def _l1_projection_by_bisection(v: np.ndarray, eps: float) -> np.ndarray:
  """Reference: soft-threshold at the theta found by bisection on sum(max(|v| - theta, 0)) = eps."""
  if np.abs(v).sum() <= eps:
    return v
  lo, hi = 0.0, float(np.abs(v).max())
  for _ in range(200):
    theta = (lo + hi) / 2
    if np.maximum(np.abs(v) - theta, 0).sum() > eps:
      lo = theta
    else:
      hi = theta
  return np.sign(v) * np.maximum(np.abs(v) - (lo + hi) / 2, 0)


def test_l1_projection_matches_bisection_and_is_nearest():
  rng = np.random.default_rng(0)
  v = (rng.normal(size=(64, 3, 4)) * rng.uniform(0.02, 0.6, size=(64, 1, 1))).astype(np.float32)
  eps = 2.0
  projected = np.asarray(jax.jit(projections.project_l1)(v, eps))
  for row, got in zip(v.astype(np.float64), projected):
    want = _l1_projection_by_bisection(row.ravel(), eps).reshape(row.shape)
    np.testing.assert_allclose(got, want, atol=2e-5)
  norms = np.abs(projected).reshape(64, -1).sum(1)
  outside = np.abs(v).reshape(64, -1).sum(1) > eps
  assert outside.sum() > 10 and (~outside).sum() > 5
  np.testing.assert_allclose(norms[outside], eps, rtol=1e-5)
  np.testing.assert_array_equal(projected[~outside], v[~outside])
  # Nearest point: no random feasible point of the ball is closer to v.
  candidates = rng.normal(size=(500, 12))
  candidates *= eps * rng.uniform(size=(500, 1)) / np.abs(candidates).sum(1, keepdims=True)
  for row, got in zip(v[outside].reshape(-1, 12), projected[outside].reshape(-1, 12)):
    assert np.linalg.norm(row - got) <= np.linalg.norm(row - candidates, axis=1).min() + 1e-6


def test_l2_and_linf_projections():
  v = jnp.array([[3.0, 4.0], [0.3, -0.4], [0.0, 0.0]])
  np.testing.assert_allclose(projections.project_l2(v, 1.0), [[0.6, 0.8], [0.3, -0.4], [0, 0]],
                             atol=1e-7)
  np.testing.assert_allclose(projections.project_linf(v, 0.5), [[0.5, 0.5], [0.3, -0.4], [0, 0]])
  np.testing.assert_allclose(projections.lp_norm(v, "l1"), [7.0, 0.7, 0.0], rtol=1e-6)
  np.testing.assert_allclose(projections.lp_norm(v, "linf"), [4.0, 0.4, 0.0])


RADIUS = {"linf": 0.3, "l2": 1.0, "l1": 2.0}


@functools.cache
def _feasible_perturbations():
  """{(norm, rounds): (x, projected delta, the projection applied twice)}, one compiled call."""
  rng = np.random.default_rng(1)
  x = np.round(rng.uniform(size=(32, 10))) * 0.8 + 0.1   # on 0.1 or 0.9
  x[:, :3] = [0.0, 1.0, 0.5]                              # some on the faces
  x, delta = x.astype(np.float32), (3 * rng.normal(size=(32, 10))).astype(np.float32)

  def project_all(delta):
    out = {}
    for norm, rounds in itertools.product(projections.NORMS, (1, 5)):
      project = lambda d: projections.project_perturbation(d, x, RADIUS[norm], norm, (0.0, 1.0),
                                                           rounds)
      out[norm, rounds] = (project(delta), project(project(delta)))
    return out

  return x, jax.jit(project_all)(delta)


@pytest.mark.parametrize("norm", projections.NORMS)
@pytest.mark.parametrize("rounds", [1, 5])
def test_projected_perturbation_is_feasible(norm, rounds):
  x, projected = _feasible_perturbations()
  out, again = (np.asarray(a) for a in projected[norm, rounds])
  assert np.asarray(projections.lp_norm(out, norm)).max() <= RADIUS[norm] + 1e-5
  assert (x + out).min() >= -1e-7 and (x + out).max() <= 1.0 + 1e-7
  np.testing.assert_allclose(again, out, atol=1e-6)   # feasible points are left alone


def test_linf_projection_is_exact_intersection():
  x = jnp.array([[0.1, 0.95, 0.5]])
  delta = jnp.array([[-0.5, 0.5, -0.1]])
  out = projections.project_perturbation(delta, x, 0.3, "linf", (0.0, 1.0))
  np.testing.assert_allclose(out, [[-0.1, 0.05, -0.1]], atol=1e-7)


def test_box_face_and_no_box():
  x = jnp.array([[0.0, 1.0, 0.5, 1.0]])
  direction = jnp.array([[-1.0, 1.0, 1.0, -1.0]])
  np.testing.assert_array_equal(projections.at_box_face(x, direction, (0.0, 1.0)),
                                [[True, True, False, False]])
  assert not projections.at_box_face(x, direction, None).any()
  np.testing.assert_array_equal(projections.clip_to_box(x + 5, None), x + 5)


@pytest.mark.parametrize("jit", [False, True])
def test_feasible_point_retries_linf_coordinates_alone(jit):
  # x + delta rounds past eps on one coordinate only (0.4 + 0.3 - 0.4 > 0.3 in float32): that
  # coordinate retries shrunk and lands within eps, the other coordinates keep x + delta exactly,
  # and a coordinate 2 eps away falls back to x.
  eps = np.float32(0.3)
  x = jnp.asarray([[0.4, 0.5, 0.2, 0.6]], jnp.float32)
  delta = jnp.asarray([[0.3, 0.25, 0.6, -0.1]], jnp.float32)
  assert float(jnp.abs((x + delta) - x)[0, 0]) > eps  # The overshoot this test is about.
  feasible = functools.partial(projections.feasible_point, eps=eps, norm="linf",
                               bounds=(0.0, 1.0), dtype=jnp.float32)
  point = np.asarray((jax.jit(feasible) if jit else feasible)(x, delta))
  moved = np.abs(point - np.asarray(x))[0]
  assert eps * (1 - 1e-4) < moved[0] <= eps  # retried, not dropped
  np.testing.assert_array_equal(point[0, [1, 3]], np.asarray(x + delta)[0, [1, 3]])
  assert moved[2] == 0.0  # 2 eps: no attempt fits, x itself


@pytest.mark.parametrize("jit", [False, True])
def test_feasible_point_retries_rows_on_the_sphere_and_falls_back_to_x(jit):
  # L2, D = 100: a perturbation of norm exactly eps fails the first attempt (L2 rows must stay
  # below eps (1 - (D + 2) u)) and passes the first retry, shrunk by 2 (D + 2) u; a perturbation
  # of norm 2 eps passes no attempt and falls back to x; a short one is kept as it is.
  d, eps = 100, 0.5
  x = jnp.full((3, d), 0.25, jnp.float32)
  direction = jnp.ones((d,), jnp.float32) / jnp.sqrt(jnp.float32(d))
  delta = jnp.stack([eps * direction, 2 * eps * direction, 0.5 * eps * direction])
  feasible = functools.partial(projections.feasible_point, eps=eps, norm="l2", bounds=(0.0, 1.0),
                               dtype=jnp.float32)
  point = (jax.jit(feasible) if jit else feasible)(x, delta)
  moved = np.asarray(projections.lp_norm(point - x, "l2"))
  assert eps * (1 - 3e-5) < moved[0] < eps * (1 - 6e-6)  # retried, not dropped
  assert moved[1] == 0.0  # no attempt fits: x itself
  np.testing.assert_allclose(moved[2], 0.5 * eps, rtol=1e-6)
