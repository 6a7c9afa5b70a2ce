"""What pgd promises whatever the model or input: fresh weights, finite successes, exact
constraints in the input dtype, label checks, and a success that describes the returned x_adv."""
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmr import attacks

DIM, CLASSES = 12, 3
RNG = np.random.default_rng(0)
W = RNG.normal(size=(DIM, CLASSES)).astype(np.float32)
X = jnp.asarray(RNG.uniform(0.2, 0.8, size=(16, DIM)), jnp.float32)
KEY = jax.random.key(0)


def linear(w, x):
  return x @ w


def labels_of(w, x):
  return jnp.argmax(x @ w, axis=1)


class LinearModel:
  """A model object holding its params, changed in place like an NNX module."""

  def __init__(self, w):
    self.w = jnp.asarray(w)

  def __call__(self, x):
    return x @ self.w


def _fresh_success(logits_fn, x_adv, y):
  logits = np.asarray(logits_fn(x_adv))
  return np.all(np.isfinite(logits), axis=1) & (logits.argmax(1) != np.asarray(y))


def test_a_model_changed_in_place_is_attacked_with_its_current_weights():
  model = LinearModel(W)
  y = labels_of(W, X)
  forms = (model, jax.tree_util.Partial(model.__call__))   # the object, its bound method
  for logits_fn in forms:
    attacks.pgd(logits_fn, X, y, key=KEY, eps=0.1, steps=5)
  model.w = -model.w          # flip the layer in place: y is now mostly wrong
  for logits_fn in forms:
    r = attacks.pgd(logits_fn, X, y, key=KEY, eps=0.1, steps=5)
    np.testing.assert_array_equal(r.success, _fresh_success(model, r.x_adv, y))


def test_a_partial_over_new_params_reuses_the_compilation_and_uses_the_new_params():
  traces = []

  def counted(w, x):
    traces.append(1)
    return x @ w

  y = labels_of(W, X)
  traced_by_first_call = None
  for w in (W, -W):
    r = attacks.pgd(jax.tree_util.Partial(counted, jnp.asarray(w)), X, y, key=KEY, eps=0.1,
                    steps=5)
    np.testing.assert_array_equal(r.success, _fresh_success(lambda x: x @ w, r.x_adv, y))
    traced_by_first_call = traced_by_first_call or len(traces)
  assert len(traces) == traced_by_first_call > 0   # the second call traced nothing


def sqrt_model(x):
  return jnp.sqrt(x) @ W     # gradient inf at x = 0


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
@pytest.mark.parametrize("optimizer", ["sign", "adam"])
def test_non_finite_gradients_make_a_zero_step(norm, optimizer):
  x = X.at[:, :4].set(0.0)
  y = labels_of(W, jnp.sqrt(x))
  r = attacks.pgd(sqrt_model, x, y, key=KEY, eps={"linf": 0.1, "l2": 0.5, "l1": 1.0}[norm],
                  norm=norm, optimizer=optimizer, init="zero", steps=10, early_stop=False)
  assert np.all(np.isfinite(np.asarray(r.x_adv)))
  assert np.all(np.isfinite(np.asarray(r.loss)))
  np.testing.assert_array_equal(r.success, _fresh_success(sqrt_model, r.x_adv, y))
  assert np.any(np.asarray(r.x_adv) != np.asarray(x))   # the finite coordinates still moved


def test_non_finite_logits_never_count_as_success():
  nan_rows = lambda x: jnp.where(x[:, :1] > 0.5, jnp.nan, x @ W)
  nan = np.arange(X.shape[0]) % 2 == 0
  x = X.at[:, 0].set(jnp.where(nan, 0.9, 0.1))    # eps 0.1 cannot leave either side of 0.5
  y = jnp.full(X.shape[0], 2, jnp.int32)     # argmax of NaN logits is 0 != 2
  r = attacks.pgd(nan_rows, x, y, key=KEY, eps=0.1, steps=3)
  assert not np.asarray(r.success)[nan].any()
  assert not np.asarray(r.success_per_restart)[:, nan].any()


def test_pgd_inside_a_jit_with_a_concrete_batch_closed_over():
  y = labels_of(W, X)

  @jax.jit
  def broken(w):
    return attacks.pgd(jax.tree_util.Partial(linear, w), X, y, key=KEY, eps=0.1, steps=5).success

  np.testing.assert_array_equal(broken(jnp.asarray(W)),
                                attacks.pgd(jax.tree_util.Partial(linear, jnp.asarray(W)), X, y,
                                            key=KEY, eps=0.1, steps=5).success)


def two_regions(x):
  """Gradient-free: left of 0.5 a high loss, correctly classified; right a lower loss, fooled."""
  left = jnp.array([0.0, -0.1, -0.1])
  right = jnp.array([0.0, 0.1, -10.0])
  return jnp.where(x[:, :1] < 0.5, left, right)


def test_success_describes_the_returned_x_adv_without_early_stop():
  x = jnp.full((16, 1), 0.5, jnp.float32)
  y = jnp.zeros(16, jnp.int32)
  r = attacks.pgd(two_regions, x, y, key=KEY, eps=0.4, steps=1, restarts=4,
                  early_stop=False)
  per_restart = np.asarray(r.success_per_restart)
  assert (per_restart.any(0) & ~per_restart.all(0)).any()   # inputs with mixed restarts
  np.testing.assert_array_equal(r.success, per_restart.any(0))
  np.testing.assert_array_equal(r.success, _fresh_success(two_regions, r.x_adv, y))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_half_precision_inputs_keep_their_dtype_and_exact_constraints(dtype, norm):
  x = X.astype(dtype)
  eps = {"linf": 0.03, "l2": 0.3, "l1": 1.0}[norm]
  model = lambda v: v.astype(jnp.float32) @ W
  y = labels_of(W, x.astype(jnp.float32))
  for init in ("uniform", "paper"):
    r = attacks.pgd(model, x, y, key=KEY, eps=eps, norm=norm, init=init, steps=10)
    assert r.x_adv.dtype == dtype
    delta = r.x_adv.astype(jnp.float32) - x.astype(jnp.float32)
    assert float(attacks.lp_norm(delta, norm).max()) <= np.float32(eps)
    assert float(jnp.abs(delta).max()) > 0
    np.testing.assert_array_equal(r.success, _fresh_success(model, r.x_adv, y))


@pytest.mark.parametrize("seed", range(6))
def test_float32_constraints_hold_exactly_in_any_summation_order(seed):
  rng = np.random.default_rng(seed)
  dim = int(rng.integers(3, 300))
  w = rng.normal(size=(dim, 2)).astype(np.float32)
  x = np.clip(rng.uniform(-0.3, 1.3, size=(32, dim)), 0.0, 1.0).astype(np.float32)
  y = jnp.zeros(32, jnp.int32)
  for norm in ("linf", "l2", "l1"):
    eps = np.float32(rng.uniform(0.01, 0.5) * {"linf": 1, "l2": 3, "l1": 10}[norm])
    r = attacks.pgd(jax.tree_util.Partial(linear, jnp.asarray(w)), jnp.asarray(x), y,
                    key=jax.random.key(seed), eps=float(eps), norm=norm, steps=5,
                    init="uniform", early_stop=False)
    x_adv = np.asarray(r.x_adv)
    delta = x_adv - x
    numpy_norm = {"linf": np.abs(delta).max(1), "l2": np.linalg.norm(delta, axis=1),
                  "l1": np.abs(delta).sum(1)}[norm]
    assert numpy_norm.max() <= eps, (norm, numpy_norm.max() - eps)
    assert float(attacks.lp_norm(jnp.asarray(delta), norm).max()) <= eps
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert numpy_norm.max() > 0.5 * eps          # the perturbations are not given up


def test_labels_out_of_range_and_targets_equal_to_the_truth_are_rejected():
  f = jax.tree_util.Partial(linear, jnp.asarray(W))
  y = labels_of(W, X)
  for bad, text in ((y.at[3].set(-1), "row 3 has -1"), (y.at[5].set(CLASSES), "row 5 has 3")):
    with pytest.raises(ValueError, match=r"labels y must lie in \[0, 3\) for the model's 3 "
                       r"classes; " + text):
      attacks.pgd(f, X, bad, key=KEY, eps=0.1)
  target = (y + 1) % CLASSES
  with pytest.raises(ValueError, match=r"target y equals the true label y_true in 1 rows "
                     r"\(first: row 2\)"):
    attacks.pgd(f, X, target.at[2].set(y[2]), key=KEY, eps=0.1, targeted=True, y_true=y)
  with pytest.raises(ValueError, match="y_true is for targeted attacks"):
    attacks.pgd(f, X, y, key=KEY, eps=0.1, y_true=y)
  r = attacks.pgd(f, X, target, key=KEY, eps=0.1, targeted=True, y_true=y)
  assert r.success.shape == (16,)


def test_labels_out_of_range_under_a_trace_never_succeed():
  f = jax.tree_util.Partial(linear, jnp.asarray(W))
  y = jnp.full(X.shape[0], -1, jnp.int32)
  r = jax.jit(lambda y: attacks.pgd(f, X, y, key=KEY, eps=0.1, steps=2))(y)
  assert not np.asarray(r.success).any()


def test_chunked_restarts_equal_one_batch():
  f = jax.tree_util.Partial(linear, jnp.asarray(W))
  y = labels_of(W, X)
  options = dict(key=KEY, eps=0.05, steps=5, restarts=5, early_stop=False)
  whole = attacks.pgd(f, X, y, **options)
  chunked = attacks.pgd(f, X, y, max_rows=2 * X.shape[0], **options)   # chunks of 2 restarts
  np.testing.assert_allclose(chunked.x_adv, whole.x_adv, atol=1e-6)
  np.testing.assert_array_equal(chunked.success_per_restart, whole.success_per_restart)
  np.testing.assert_allclose(chunked.loss, whole.loss, rtol=1e-6)


def test_unroll_defaults_to_auto():
  assert attacks.AttackSpec(eps=0.1).unroll == "auto"
  f = jax.tree_util.Partial(linear, jnp.asarray(W))
  y = labels_of(W, X)
  auto = attacks.pgd(f, X, y, key=KEY, eps=0.05, steps=5)
  on_cpu = attacks.pgd(f, X, y, key=KEY, eps=0.05, steps=5,
                       unroll=jax.default_backend() == "cpu")
  np.testing.assert_array_equal(auto.x_adv, on_cpu.x_adv)
  with pytest.raises(ValueError, match=r"unroll='yes' must be True, False or \"auto\""):
    attacks.pgd(f, X, y, key=KEY, eps=0.05, unroll="yes")


BLOCKED_IMPORTS = """
import sys
class Block:
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] in {"flax", "orbax", "tensorflow_datasets", "tensorflow", "equinox",
                              "ml_collections", "chex"}:
      raise ImportError(f"blocked: {name}")
sys.meta_path.insert(0, Block())
import jax, jax.numpy as jnp
from dmr import attacks
x = jnp.full((2, 3), 0.5)
r = attacks.pgd(lambda v: v @ jnp.eye(3), x, jnp.array([0, 1]), key=jax.random.key(0), eps=0.3)
print(sorted(m for m in sys.modules if m.split(".")[0] in {"flax", "orbax", "equinox"}),
      r.x_adv.shape)
"""


def test_attacks_need_only_jax_optax_and_numpy():
  out = subprocess.run([sys.executable, "-c", BLOCKED_IMPORTS], capture_output=True, text=True,
                       check=True)
  assert out.stdout.strip() == "[] (2, 3)"
