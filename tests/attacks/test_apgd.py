"""apgd on linear models whose optimum is known in closed form, APGD-T's targets, non-finite
safety, exact constraints in the input dtype, the loop choice and label checks."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmr.attacks import lp_norm
from dmr.attacks._execution import choose_loop
from dmr.attacks.apgd import apgd, checkpoint_schedule
from dmr.attacks.projections import project_l1_box

DIM = 100
RNG = np.random.default_rng(0)
W_DIFF = RNG.normal(size=DIM).astype(np.float32)
# Two classes, label 0: margin = z_1 - z_0 = -x.w - bias. Every test picks the bias that puts
# the optimal margin at -2: all inputs stay correctly classified (the attack returns its
# highest-loss point) and cross-entropy, monotone in the margin, is not saturated in float32.
EPS = {"linf": 0.1, "l2": 0.5, "l1": 2.0}
DUAL = {"linf": 1, "l2": 2, "l1": np.inf}
OPTIMAL_MARGIN = -2.0


def linear_model(x_row, gain):
  """logits_fn whose margin at x_row + the best perturbation (margin gain `gain`) is -2."""
  bias = -float(np.asarray(x_row) @ W_DIFF) + gain - OPTIMAL_MARGIN
  weights = jnp.stack([W_DIFF / 2, -W_DIFF / 2], axis=1)
  return lambda x: x @ weights + jnp.array([bias, 0.0])


def margin(logits_fn, x):
  logits = np.asarray(logits_fn(x))
  return logits[:, 1] - logits[:, 0]


def _x(batch, seed=1):
  """`batch` copies of one random input in [0, 1]^D (each row gets its own random start)."""
  row = np.random.default_rng(seed).uniform(size=(1, DIM))
  return jnp.asarray(np.repeat(row, batch, axis=0), jnp.float32)


def _box_optimum_gain(x, eps, norm):
  """Exact margin gain over {||d|| <= eps} inside the box [0, 1] (linf and l1)."""
  room = np.where(-W_DIFF > 0, 1.0 - np.asarray(x), np.asarray(x))   # to the face -w points at
  if norm == "linf":
    return np.sum(np.abs(W_DIFF) * np.minimum(room, eps), axis=1)
  gains = []
  for r in room:   # fractional knapsack: fill the largest |w| first
    left, gain = eps, 0.0
    for i in np.argsort(-np.abs(W_DIFF)):
      move = min(r[i], left)
      gain, left = gain + abs(W_DIFF[i]) * move, left - move
    gains.append(gain)
  return np.array(gains)


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_reaches_the_analytic_optimum_within_one_percent_in_100_steps(norm):
  x = _x(4)
  optimum = EPS[norm] * np.linalg.norm(W_DIFF, ord=DUAL[norm])
  model = linear_model(x[0], optimum)
  r = apgd(model, x, jnp.zeros(4, jnp.int32), key=jax.random.key(0), eps=EPS[norm], norm=norm,
           steps=100, bounds=(-100.0, 100.0), unroll=False)
  gain = margin(model, r.x_adv) - margin(model, x)
  assert np.all(gain >= 0.99 * optimum), gain / optimum
  assert np.all(np.asarray(lp_norm(r.x_adv - x, norm)) <= EPS[norm] * (1 + 1e-6))
  assert not np.any(r.success)


@pytest.mark.parametrize("norm", ["linf", "l1"])
def test_reaches_the_optimum_with_the_box_active(norm):
  x = _x(4, seed=2)
  eps = {"linf": 0.3, "l1": 8.0}[norm]
  optimum = _box_optimum_gain(x, eps, norm)
  model = linear_model(x[0], optimum[0])
  r = apgd(model, x, jnp.zeros(4, jnp.int32), key=jax.random.key(0), eps=eps, norm=norm,
           steps=100, bounds=(0.0, 1.0), unroll=False)
  gain = margin(model, r.x_adv) - margin(model, x)
  assert np.all(gain >= 0.99 * optimum), gain / optimum
  assert np.all((np.asarray(r.x_adv) >= 0.0) & (np.asarray(r.x_adv) <= 1.0))


def test_unrolled_and_rolled_loops_agree():
  x = _x(2)
  y = jnp.zeros(2, jnp.int32)
  model = linear_model(x[0], 5.0)
  run = lambda unroll: apgd(model, x, y, key=jax.random.key(3), eps=0.5, norm="l2",
                            steps=10, bounds=None, unroll=unroll)
  np.testing.assert_allclose(run(True).x_adv, run(False).x_adv, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loss", ["ce", "dlr-targeted"])
def test_host_loop_and_compiled_loop_agree(loss):
  x = jnp.full((2, 50), 0.5)
  run = lambda host_loop: apgd(_four_class_logits, x, jnp.zeros(2, jnp.int32),
                               key=jax.random.key(0), eps=0.1, loss=loss, target_classes=3,
                               steps=10, host_loop=host_loop)
  host, compiled = run(True), run(False)
  np.testing.assert_allclose(host.x_adv, compiled.x_adv, rtol=1e-6, atol=1e-6)
  for field in ("success", "success_per_restart"):
    np.testing.assert_array_equal(getattr(host, field), getattr(compiled, field))


def test_host_loop_refuses_to_run_under_jit():
  x = jnp.full((2, 50), 0.5)
  with pytest.raises(ValueError, match="host_loop=True drives the steps from Python"):
    jax.jit(lambda x: apgd(_four_class_logits, x, jnp.zeros(2, jnp.int32), key=jax.random.key(0),
                           eps=0.1, host_loop=True).x_adv)(x)


def test_step_size_halves_to_settle_on_an_interior_optimum():
  # margin = -||x - c||^2 - 2 with c inside the L2 ball: fixed steps of 2 eps would jump around
  # c forever; eight halvings bring the step to eps / 128.
  center = np.zeros((1, DIM), np.float32)
  center[0, :4] = 0.25   # ||c - x|| = 0.5 with x = 0
  model = lambda x: jnp.stack([jnp.zeros(x.shape[0]),
                               -jnp.sum((x - center) ** 2, axis=1) - 2.0], axis=1)
  x = jnp.zeros((2, DIM))
  r = apgd(model, x, jnp.zeros(2, jnp.int32), key=jax.random.key(0), eps=1.0, norm="l2",
           steps=100, bounds=None, unroll=False)
  assert np.all(np.linalg.norm(np.asarray(r.x_adv) - center, axis=1) < 0.02)


def test_checkpoints_follow_the_paper_schedule():
  is_checkpoint, window = checkpoint_schedule(100, "linf")
  # windows of 22, 19, 16, 13, 10, 7, 6, 6 steps end after steps 22, 41, 57, 70, 80, 87, 93, 99
  assert list(np.flatnonzero(is_checkpoint) + 1) == [22, 41, 57, 70, 80, 87, 93, 99]
  assert list(window[is_checkpoint]) == [22, 19, 16, 13, 10, 7, 6, 6]
  is_checkpoint, _ = checkpoint_schedule(100, "l1")
  assert list(np.flatnonzero(is_checkpoint) + 1) == list(range(4, 101, 4))


def test_l1_box_projection_on_a_hand_solved_case():
  # v = (3, -1, 0.5) from x = 0.5 in [0, 1], eps 0.8: the threshold 0.7 gives (0.5, -0.3, 0).
  v = jnp.array([[3.0, -1.0, 0.5]])
  d = project_l1_box(v, jnp.full((1, 3), 0.5), 0.8, (0.0, 1.0))
  np.testing.assert_allclose(d, [[0.5, -0.3, 0.0]], atol=1e-6)
  inside = jnp.array([[0.1, -0.2, 0.0]])
  np.testing.assert_array_equal(project_l1_box(inside, jnp.full((1, 3), 0.5), 0.8, (0.0, 1.0)),
                                inside)


def _four_class_logits(x):
  """Label 0 (logit 10) over class 1 (9, constant: unreachable), class 2 (8.5 + 15.1 (x_0 - 0.5):
  above 10 only with x_0 moved by nearly the whole L-inf radius 0.1) and class 3 (7, constant)."""
  reachable = 8.5 + 15.1 * (x[:, 0] - 0.5)
  constant = lambda v: jnp.full_like(reachable, v)
  return jnp.stack([constant(10.0), constant(9.0), reachable, constant(7.0)], axis=1)


def test_apgd_t_targets_the_classes_ranked_second_third_and_skips_once_fooled():
  x = jnp.full((2, 50), 0.5)
  r = apgd(_four_class_logits, x, jnp.zeros(2, jnp.int32), key=jax.random.key(0), eps=0.1,
           loss="dlr-targeted", target_classes=3, steps=20, unroll=False)
  # run 0 targets class 1 (cannot succeed), run 1 class 2 (succeeds), run 2 is skipped.
  np.testing.assert_array_equal(r.success_per_restart, [[False, False], [True, True],
                                                        [False, False]])
  assert np.all(np.argmax(_four_class_logits(r.x_adv), axis=1) == 2)
  assert np.all(np.asarray(lp_norm(r.x_adv - x, "linf")) <= 0.1 * (1 + 1e-6))


def test_non_finite_gradient_coordinates_take_no_step():
  # 0 * sqrt(0) has a NaN gradient in coordinate 0 and a finite value: the other coordinates
  # must still carry the attack to the optimum.
  x = _x(2)
  optimum = 0.1 * (np.abs(W_DIFF).sum() - abs(W_DIFF[0]))
  model = linear_model(x[0], optimum)
  nan_grad = lambda x: model(x) + 0.0 * jnp.sqrt(x[:, :1] - x[:, :1])
  r = apgd(nan_grad, x, jnp.zeros(2, jnp.int32), key=jax.random.key(0), eps=0.1, steps=100,
           bounds=None, unroll=False)
  assert np.all(np.isfinite(np.asarray(r.x_adv)))
  assert np.all(margin(model, r.x_adv) - margin(model, x) >= 0.99 * optimum)


def test_a_non_finite_logit_never_counts_as_success():
  # argmax of a NaN row is 0, which is not the label 1: only the finiteness check stops it.
  nan_logits = lambda x: jnp.full((x.shape[0], 3), jnp.nan) + 0.0 * x[:, :1]
  r = apgd(nan_logits, _x(3), jnp.ones(3, jnp.int32), key=jax.random.key(0), eps=0.1, steps=5,
           unroll=False)
  assert not np.any(r.success) and not np.any(r.success_per_restart)


@pytest.mark.parametrize("label", [-1, 2])
def test_labels_outside_the_classes_are_rejected(label):
  with pytest.raises(ValueError, match=r"labels y must lie in \[0, 2\) for the model's 2 classes; row 1 has"):
    apgd(linear_model(_x(1)[0], 1.0), _x(2), jnp.array([0, label]), key=jax.random.key(0), eps=0.1)


def test_dlr_needs_three_classes():
  with pytest.raises(ValueError, match="loss='dlr' needs at least 3 classes, the model has 2"):
    apgd(linear_model(_x(1)[0], 1.0), _x(2), jnp.zeros(2, jnp.int32), key=jax.random.key(0),
         eps=0.1, loss="dlr")


def test_runs_under_vmap():
  x = _x(4).reshape(2, 2, DIM)
  y = jnp.zeros((2, 2), jnp.int32)
  model = linear_model(x[0, 0], 5.0)
  batched = jax.vmap(lambda x, y: apgd(model, x, y, key=jax.random.key(0), eps=0.1,
                                       steps=10, bounds=None, unroll=False).x_adv)(x, y)
  single = apgd(model, x[1], y[1], key=jax.random.key(0), eps=0.1, steps=10,
                bounds=None, unroll=False).x_adv
  np.testing.assert_allclose(batched[1], single, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_outputs_keep_the_input_dtype_and_exact_constraints(dtype, norm):
  # eps 0.05 around x in [0, 1]: x + 0.05 - x rounds above 0.05 in float32 for many x.
  x = jnp.asarray(np.random.default_rng(3).uniform(0.1, 0.9, size=(8, DIM)), dtype)
  eps = {"linf": 0.05, "l2": 0.3, "l1": 1.0}[norm]
  model = linear_model(np.asarray(x[0], np.float32), 100.0)
  logits_fn = lambda v: model(v.astype(jnp.float32))
  r = apgd(logits_fn, x, jnp.zeros(8, jnp.int32), key=jax.random.key(0), eps=eps, norm=norm,
           steps=5, unroll=False)
  assert r.x_adv.dtype == dtype
  wide, x_adv = np.asarray(x, np.float32), np.asarray(r.x_adv, np.float32)
  delta = x_adv - wide
  numpy_norm = {"linf": np.abs(delta).max(1), "l2": np.linalg.norm(delta, axis=1),
                "l1": np.abs(delta).sum(1)}[norm]
  assert numpy_norm.max() <= np.float32(eps) and numpy_norm.max() > 0.5 * eps
  assert float(lp_norm(jnp.asarray(delta), norm).max()) <= np.float32(eps)
  assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0


def test_auto_never_unrolls_and_leaves_the_compiled_loop_for_conv_models_on_cpu():
  on_cpu = jax.default_backend() == "cpu"
  # Whether unrolling would pay: resolve_stepping's "auto" for a model whose gradient convolves.
  conv, dense = on_cpu, False
  assert choose_loop("auto", False, conv, eager=True) == ("host" if on_cpu else "rolled")
  assert choose_loop("auto", False, conv, eager=False) == "rolled"    # under jit or vmap
  assert choose_loop("auto", False, dense, eager=True) == "rolled"
  assert choose_loop(True, False, dense, eager=True) == "unrolled"
  assert choose_loop(False, False, conv, eager=True) == "rolled"
  assert choose_loop("auto", True, dense, eager=True) == "host"
