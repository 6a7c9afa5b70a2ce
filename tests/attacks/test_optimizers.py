"""Steepest-ascent directions per norm, the box-aware sparse L1 step, and Adam's ascent."""
import jax.numpy as jnp
import numpy as np
import optax

from dmr.attacks import optimizers


def test_linf_and_l2_directions():
  grad = jnp.array([[3.0, -4.0, 0.0]])
  np.testing.assert_array_equal(optimizers.steepest_ascent(grad, "linf"), [[1, -1, 0]])
  np.testing.assert_allclose(optimizers.steepest_ascent(grad, "l2"), [[0.6, -0.8, 0]], atol=1e-7)


def test_l1_direction_moves_the_top_5_percent_and_skips_blocked_coordinates():
  grad = jnp.arange(1.0, 41.0).reshape(1, 40) * jnp.where(jnp.arange(40) % 2, -1.0, 1.0)
  # D = 40 -> k = 2: the coordinates with |grad| 40 and 39, each by 1/2.
  direction = np.asarray(optimizers.steepest_ascent(grad, "l1"))[0]
  np.testing.assert_allclose(direction[[38, 39]], [0.5, -0.5])
  assert np.abs(direction).sum() == 1.0 and np.count_nonzero(direction) == 2
  movable = jnp.ones((1, 40), bool).at[0, 39].set(False)
  direction = np.asarray(optimizers.steepest_ascent(grad, "l1", movable))[0]
  np.testing.assert_allclose(direction[[37, 38]], [-0.5, 0.5])
  assert np.count_nonzero(direction) == 2


def test_sign_step_skips_box_faces_for_l1_only():
  grad = jnp.array([[5.0, 1.0, 0.5, 0.1] * 5])
  x_adv = jnp.ones((1, 20))  # every coordinate on the upper face
  x_adv = x_adv.at[0, 1].set(0.5)
  opt = optimizers.make_optimizer("sign", "l1", 0.1)
  update, _ = opt.update(grad, opt.init(grad), grad, x_adv=x_adv, bounds=(0.0, 1.0))
  np.testing.assert_allclose(update[0, 1], 0.1)       # the only free coordinate gets the step
  assert float(jnp.abs(update).sum()) == np.float32(0.1)
  opt = optimizers.make_optimizer("sign", "linf", 0.1)
  update, _ = opt.update(grad, opt.init(grad), grad, x_adv=x_adv, bounds=(0.0, 1.0))
  np.testing.assert_allclose(update, 0.1 * jnp.ones((1, 20)))


def test_adam_ascends_with_learning_rate_steps():
  grad = jnp.array([[2.0, -0.001]])
  opt = optimizers.make_optimizer("adam", "linf", 0.005)
  update, _ = opt.update(grad, opt.init(grad), grad, x_adv=grad, bounds=None)
  delta = optax.apply_updates(jnp.zeros((1, 2)), update)
  np.testing.assert_allclose(delta, [[0.005, -0.005]], rtol=1e-4)


def test_default_step_sizes():
  assert optimizers.default_step_size(0.3, "sign", 40) == 2.5 * 0.3 / 40
  assert optimizers.default_step_size(1.5, "adam", 40) == 0.005
  assert optimizers.projection_rounds("adam") == 5 and optimizers.projection_rounds("sign") == 1
