"""Attack objectives and the success criterion on hand-computed logits."""
import jax.numpy as jnp
import numpy as np

from dmr.attacks import losses

LOGITS = jnp.array([[2.0, 0.0, 1.0], [0.0, 3.0, 1.0]])
LABELS = jnp.array([0, 2])


def test_cross_entropy_and_margin():
  lse = np.log(np.exp([2.0, 0.0, 1.0]).sum()), np.log(np.exp([0.0, 3.0, 1.0]).sum())
  np.testing.assert_allclose(losses.cross_entropy(LOGITS, LABELS), [lse[0] - 2, lse[1] - 1],
                             rtol=1e-6)
  np.testing.assert_allclose(losses.margin(LOGITS, LABELS), [-1.0, 2.0])


def test_targeted_loss_is_the_negated_loss_of_the_target():
  np.testing.assert_allclose(losses.attack_loss(LOGITS, LABELS, "margin", True), [1.0, -2.0])
  np.testing.assert_allclose(losses.attack_loss(LOGITS, LABELS, "ce", True),
                             -losses.cross_entropy(LOGITS, LABELS))


def test_success():
  np.testing.assert_array_equal(losses.is_success(LOGITS, LABELS, False), [False, True])
  np.testing.assert_array_equal(losses.is_success(LOGITS, LABELS, True), [True, False])


def test_dlr_losses_on_hand_computed_logits():
  logits = jnp.array([[1.0, 4.0, 2.0, 0.0]])
  # margin 4 - 1 = 3 over z_(1) - z_(3) = 4 - 1 = 3
  np.testing.assert_allclose(losses.dlr(logits, jnp.array([0])), [1.0], rtol=1e-6)
  # (z_t - z_y) / (z_(1) - (z_(3) + z_(4)) / 2) = (2 - 1) / (4 - 0.5)
  np.testing.assert_allclose(losses.targeted_dlr(logits, jnp.array([0]), jnp.array([2])),
                             [1 / 3.5], rtol=1e-6)
  # invariant to shifting and scaling the logits
  np.testing.assert_allclose(losses.dlr(3 * logits + 7, jnp.array([2])),
                             losses.dlr(logits, jnp.array([2])), rtol=1e-6)
