"""fab (FAB-T) on linear classifiers, where the closest adversarial example has a closed form."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmr.attacks import projections
from dmr.attacks.fab import FABSpec, boundary_step, fab, iterate


DIM, CLASSES = 12, 4
RNG = np.random.default_rng(0)
WEIGHTS = jnp.asarray(RNG.normal(size=(DIM, CLASSES)), jnp.float32)
BIAS = jnp.asarray(RNG.normal(size=CLASSES) * 0.1, jnp.float32)
DUAL = {"linf": 1, "l2": 2}


def linear_logits(x):
  return x.reshape(x.shape[0], -1) @ WEIGHTS + BIAS


def _batch(batch=16):
  """Inputs in the middle of the box and their predicted labels."""
  x = jnp.asarray(np.random.default_rng(1).uniform(0.4, 0.6, size=(batch, DIM)), jnp.float32)
  return x, jnp.argmax(linear_logits(x), axis=1).astype(jnp.int32)


def closest_distance(x, y, norm, classes=range(CLASSES)):
  """Per row: min over target classes k of |f_k(x)| / ||w_k - w_y||_dual (no box)."""
  w, b = np.asarray(WEIGHTS, np.float64), np.asarray(BIAS, np.float64)
  x, y = np.asarray(x, np.float64), np.asarray(y)
  out = []
  for i in range(len(x)):
    gaps = [abs((w[:, k] - w[:, y[i]]) @ x[i] + b[k] - b[y[i]])
            / np.linalg.norm(w[:, k] - w[:, y[i]], DUAL[norm]) for k in classes if k != y[i]]
    out.append(min(gaps))
  return np.array(out)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_finds_the_closest_adversarial_example_of_a_linear_classifier(norm):
  x, y = _batch()
  target = closest_distance(x, y, norm)
  bounds = None   # the closed form ignores the box; at L-inf the box does not bind here
  if norm == "linf":
    bounds = (0.0, 1.0)
    assert np.asarray(x).min() - target.max() >= 0 and np.asarray(x).max() + target.max() <= 1
  r = fab(linear_logits, x, y, key=jax.random.key(0), eps=None, norm=norm, steps=30,
          target_classes=CLASSES - 1, bounds=bounds)
  assert np.all(r.success)
  found = np.asarray(projections.lp_norm(r.x_adv - x, norm))
  assert np.all(found >= target * (1 - 1e-4))   # never closer than the optimum
  np.testing.assert_allclose(found, target, rtol=0.01)
  np.testing.assert_allclose(r.distance, found, rtol=1e-4)


def test_breaks_exactly_the_inputs_breakable_inside_eps():
  x, y = _batch(64)
  target = closest_distance(x, y, "l2")
  eps = float(np.median(target))
  r = fab(linear_logits, x, y, key=jax.random.key(0), eps=eps, norm="l2", steps=30,
          target_classes=CLASSES - 1)
  clear = np.abs(target - eps) > 0.02 * eps
  np.testing.assert_array_equal(np.asarray(r.success)[clear], (target <= eps)[clear])
  assert np.all(np.asarray(projections.lp_norm(r.x_adv - x, "l2")) <= eps)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_never_returns_an_infeasible_point(norm):
  """Inputs on the box faces, a small eps, bfloat16 inputs: x_adv stays in the ball and the box,
  in the input dtype, and success is what the model says of x_adv."""
  x = jnp.asarray(np.random.default_rng(2).choice([0.0, 0.3, 1.0], size=(32, DIM)),
                  jnp.bfloat16)
  y = jnp.argmax(linear_logits(x), axis=1).astype(jnp.int32)
  eps = 0.05 if norm == "linf" else 0.2
  r = fab(linear_logits, x, y, key=jax.random.key(1), eps=eps, norm=norm, steps=20,
          restarts=2, target_classes=2)
  assert r.x_adv.dtype == jnp.bfloat16
  wide = np.asarray(r.x_adv, np.float32)
  assert wide.min() >= 0 and wide.max() <= 1
  assert np.all(np.asarray(projections.lp_norm(r.x_adv.astype(jnp.float32)
                                               - x.astype(jnp.float32), norm)) <= eps)
  fooled = np.asarray(jnp.argmax(linear_logits(r.x_adv), axis=1) != y)
  np.testing.assert_array_equal(np.asarray(r.success), fooled)


def test_host_loop_gives_the_compiled_loops_numbers():
  x, y = _batch()
  kwargs = dict(key=jax.random.key(0), eps=0.05, norm="linf", steps=10, restarts=2,
                target_classes=2)
  compiled, host = fab(linear_logits, x, y, **kwargs), fab(linear_logits, x, y, host_loop=True,
                                                           **kwargs)
  np.testing.assert_allclose(host.x_adv, compiled.x_adv, atol=1e-6)
  np.testing.assert_array_equal(host.success, compiled.success)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_boundary_step_is_the_smallest_step_onto_the_hyperplane_in_the_box(norm):
  """Against a brute-force check: the step reaches w.d = c, stays in the box, and no random
  feasible step onto the hyperplane is shorter."""
  rng = np.random.default_rng(3)
  t = jnp.asarray(rng.uniform(0, 1, (8, 5)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(8, 5)), jnp.float32)
  c = jnp.asarray(rng.normal(size=8) * 0.5, jnp.float32)
  d = np.asarray(boundary_step(t, w, c, 0.0, 1.0, norm))
  reach = np.abs(np.asarray(w)) * np.where(np.sign(np.asarray(c))[:, None] * np.asarray(w) > 0,
                                           1 - np.asarray(t), np.asarray(t))
  ok = reach.sum(1) > np.abs(np.asarray(c))
  np.testing.assert_allclose(np.sum(np.asarray(w) * d, 1)[ok], np.asarray(c)[ok], atol=1e-5)
  assert np.all(np.asarray(t) + d >= -1e-6) and np.all(np.asarray(t) + d <= 1 + 1e-6)
  size = np.asarray(projections.lp_norm(jnp.asarray(d), norm))
  for i in np.flatnonzero(ok):
    for _ in range(300):   # random feasible steps onto the hyperplane, never shorter
      other = rng.uniform(-np.asarray(t[i]), 1 - np.asarray(t[i]))
      k = np.argmax(np.abs(np.asarray(w[i])))
      other[k] = (float(c[i]) - np.delete(np.asarray(w[i]) * other, k).sum()) / float(w[i, k])
      if 0 <= t[i, k] + other[k] <= 1:
        assert size[i] <= np.linalg.norm(other, {"linf": np.inf, "l2": 2}[norm]) + 1e-5


def test_rejects_what_it_does_not_support():
  x, y = _batch(4)
  with pytest.raises(ValueError, match="norm='l1' is not supported"):
    fab(linear_logits, x, y, key=jax.random.key(0), eps=1.0, norm="l1")
  with pytest.raises(ValueError, match="need eps"):
    fab(linear_logits, x, y, key=jax.random.key(0), eps=None, restarts=2)
  with pytest.raises(ValueError, match="target_classes=4 exceeds"):
    fab(linear_logits, x, y, key=jax.random.key(0), eps=0.1, target_classes=4)


def test_one_step_mixes_the_steps_from_the_iterate_and_from_x():
  """On a two-class linear model (no box) both steps land on the boundary w.z + b = 0; the next
  iterate is (p + eta d_p)(1 - a) + (x + eta d_x) a with a = min(|d_p| / (|d_p| + |d_x|), 0.1),
  past the boundary by the overshoot, so it is the best point."""
  w = np.array([0.5, -1.0, 2.0], np.float32)
  model = lambda z: jnp.stack([jnp.zeros(z.shape[0]), z @ jnp.asarray(w) - 1.0], axis=1)
  x = jnp.asarray([[0.1, 0.2, 0.1]], jnp.float32)
  p = jnp.asarray([[0.2, 0.1, 0.25]], jnp.float32)
  y, target = jnp.zeros(1, jnp.int32), jnp.ones(1, jnp.int32)
  spec = FABSpec(norm="l2")
  _, best, distance = iterate(model, model, x, y, target, jnp.ones(1, bool), p, x,
                               jnp.full(1, jnp.inf), None, spec)
  step = lambda z: -(z @ w - 1.0) * w / (w @ w)
  d_p, d_x = step(np.asarray(p[0])), step(np.asarray(x[0]))
  a = min(np.linalg.norm(d_p) / (np.linalg.norm(d_p) + np.linalg.norm(d_x)), 0.1)
  expected = (p[0] + 1.05 * d_p) * (1 - a) + (x[0] + 1.05 * d_x) * a
  np.testing.assert_allclose(best[0], expected, rtol=1e-5)
  np.testing.assert_allclose(distance[0], np.linalg.norm(expected - x[0]), rtol=1e-5)
