"""square on linear image models: it breaks what can be broken, without any gradient."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmr import attacks
from dmr.attacks.square import SquareSpec, square, window_side

SIDE, CLASSES = 4, 3
RNG = np.random.default_rng(0)
WEIGHTS = jnp.asarray(RNG.normal(size=(SIDE * SIDE, CLASSES)), jnp.float32)


def linear_logits(x):
  return x.reshape(x.shape[0], -1) @ WEIGHTS


def no_gradient_logits(x):
  """The same model behind stop_gradient: every input gradient is exactly zero."""
  return jax.lax.stop_gradient(linear_logits(x))


def _easy_batch(eps=0.2, batch=8):
  """Images the linear model classifies by its argmax, each breakable at L-inf eps (checked)."""
  x = jnp.asarray(np.random.default_rng(1).uniform(0.3, 0.7, size=(batch, SIDE, SIDE, 1)),
                  jnp.float32)
  logits = np.asarray(linear_logits(x))
  y = logits.argmax(1)
  flat = np.asarray(x).reshape(batch, -1)
  w = np.asarray(WEIGHTS)
  best = [max(logits[i, k] - logits[i, y[i]] + eps * np.abs(w[:, k] - w[:, y[i]]).sum()
              for k in range(CLASSES) if k != y[i]) for i in range(batch)]
  assert min(best) > 0.5 and flat.min() - eps >= 0 and flat.max() + eps <= 1
  return x, jnp.asarray(y, jnp.int32)


def test_breaks_an_easy_linear_model_inside_the_ball_and_box():
  x, y = _easy_batch()
  r = square(linear_logits, x, y, key=jax.random.key(0), eps=0.2, queries=500)
  assert np.all(r.success)
  assert np.all(np.argmax(linear_logits(r.x_adv), axis=1) != y)
  assert np.all(np.asarray(attacks.lp_norm(r.x_adv - x, "linf")) <= 0.2 * (1 + 1e-6))
  np.testing.assert_allclose(r.loss, attacks.losses.margin(linear_logits(r.x_adv), y), rtol=1e-5)


def test_needs_no_gradient_where_pgd_fails():
  x, y = _easy_batch()
  masked = attacks.pgd(no_gradient_logits, x, y, key=jax.random.key(0), eps=0.2, steps=50,
                       init="zero")
  assert not np.any(masked.success)
  r = square(no_gradient_logits, x, y, key=jax.random.key(0), eps=0.2, queries=500)
  assert np.all(r.success)


def test_attacks_a_model_jax_cannot_differentiate():
  """A model on the host behind jax.pure_callback has no derivative at all; square only
  evaluates it, so it breaks it as the linear model itself."""
  host = lambda x: np.asarray(linear_logits(jnp.asarray(x)))
  on_host = lambda x: jax.pure_callback(
      host, jax.ShapeDtypeStruct((x.shape[0], CLASSES), jnp.float32), x)
  x, y = _easy_batch()
  with pytest.raises(Exception):
    jax.grad(lambda x: on_host(x).sum())(x)
  r = square(on_host, x, y, key=jax.random.key(0), eps=0.2, queries=500)
  assert np.all(r.success)


def test_never_keeps_a_worse_point():
  # eps too small to break anything; the same key gives the same start and first query, so
  # 200 queries must end at least as close to the boundary as 1.
  x, y = _easy_batch()
  r = square(linear_logits, x, y, key=jax.random.key(0), eps=0.001, queries=200)
  one = square(linear_logits, x, y, key=jax.random.key(0), eps=0.001, queries=1)
  assert not np.any(r.success)
  assert np.all(np.asarray(r.loss) >= np.asarray(one.loss))
  assert np.any(np.asarray(r.loss) > np.asarray(one.loss))


def test_host_loop_and_compiled_loop_agree():
  x, y = _easy_batch()
  run = lambda host_loop: square(linear_logits, x, y, key=jax.random.key(0), eps=0.05,
                                 queries=30, host_loop=host_loop)
  host, compiled = run(True), run(False)
  np.testing.assert_allclose(host.x_adv, compiled.x_adv, rtol=1e-6)
  np.testing.assert_allclose(host.loss, compiled.loss, rtol=1e-5)
  np.testing.assert_array_equal(host.success, compiled.success)


def test_window_shrinks_on_the_paper_schedule():
  spec = SquareSpec(queries=10000, p_init=0.8)
  sides = [int(window_side(jnp.asarray(i), 28, 28, spec)) for i in (0, 10, 11, 51, 9000)]
  # round(sqrt(p * 784)) for p = 0.8, 0.8, 0.4, 0.2, 0.8 / 512
  assert sides == [25, 25, 18, 13, 1]


def test_a_non_finite_logit_never_counts_as_success():
  x, y = _easy_batch()
  nan_logits = lambda x: linear_logits(x) * jnp.nan
  r = square(nan_logits, x, jnp.full_like(y, 1), key=jax.random.key(0), eps=0.2, queries=5)
  assert not np.any(r.success)


def test_rejects_flat_inputs_and_bad_labels():
  x, y = _easy_batch()
  with pytest.raises(ValueError, match=r"square attacks images \[B, H, W, C\]"):
    square(lambda v: v @ WEIGHTS, x.reshape(8, -1), y, key=jax.random.key(0), eps=0.1)
  with pytest.raises(ValueError, match=r"labels y must lie in \[0, 3\)"):
    square(linear_logits, x, y.at[0].set(3), key=jax.random.key(0), eps=0.1)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_outputs_keep_the_input_dtype_and_exact_constraints(dtype):
  # eps 0.05 around x in (0.3, 0.7): x + 0.05 - x rounds above 0.05 in float32 for many x.
  x, y = _easy_batch()
  x = x.astype(dtype)
  logits_fn = lambda v: linear_logits(v.astype(jnp.float32))
  r = square(logits_fn, x, y, key=jax.random.key(0), eps=0.05, queries=20)
  assert r.x_adv.dtype == dtype
  delta = np.asarray(r.x_adv, np.float32) - np.asarray(x, np.float32)
  assert np.abs(delta).max() <= np.float32(0.05) and np.abs(delta).max() > 0.04
  np.testing.assert_array_equal(r.success, np.argmax(logits_fn(r.x_adv), axis=1) != y)


def test_a_channels_first_batch_is_rejected_unless_its_layout_is_stated():
  x, y = _easy_batch()
  nchw = jnp.transpose(x, (0, 3, 1, 2))   # [8, 1, 4, 4]
  first = lambda z: linear_logits(jnp.transpose(z, (0, 2, 3, 1)))
  with pytest.raises(ValueError, match=r"read as NHWC has 4 channels but 1 x 4 pixels; pass "
                                       r"layout='NCHW'"):
    square(first, nchw, y, key=jax.random.key(0), eps=0.2, queries=10)
  with pytest.raises(ValueError, match="pass layout='NHWC'"):
    square(linear_logits, x, y, key=jax.random.key(0), eps=0.2, queries=10, layout="NCHW")


def test_channels_first_gives_the_channels_last_attack_exactly():
  x, y = _easy_batch()
  last = square(linear_logits, x, y, key=jax.random.key(3), eps=0.05, queries=40)
  first = square(lambda z: linear_logits(jnp.transpose(z, (0, 2, 3, 1))),
                 jnp.transpose(x, (0, 3, 1, 2)), y, key=jax.random.key(3), eps=0.05, queries=40,
                 layout="NCHW")
  np.testing.assert_array_equal(jnp.transpose(first.x_adv, (0, 2, 3, 1)), last.x_adv)
  np.testing.assert_array_equal(first.success, last.success)
