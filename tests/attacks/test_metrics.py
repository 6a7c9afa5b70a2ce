"""Success rates and robust accuracy on hand-made results (worked out in the comments)."""
import jax
import jax.numpy as jnp
import numpy as np

from dmr import attacks

# 4 inputs, 3 restarts. Columns: inputs 0..3; input 3 is misclassified.
PER_RESTART = jnp.array([[True, False, False, True],
                         [True, True, False, True],
                         [False, False, False, True]])
CORRECT = jnp.array([True, True, True, False])


def _result(per_restart):
  b = per_restart.shape[1]
  return attacks.AttackResult(x_adv=jnp.zeros((b, 2)), success=per_restart.any(0),
                              success_per_restart=per_restart, loss=jnp.zeros(b))


def test_rates_by_hand():
  r = _result(PER_RESTART)
  # Correct inputs 0, 1, 2: successful pairs 2 + 1 + 0 = 3 of 3 x 3 = 9.
  np.testing.assert_allclose(attacks.success_rate(r, CORRECT), 3 / 9)
  # Inputs 0 and 1 are broken by some restart: 2 of 3.
  np.testing.assert_allclose(attacks.worst_case_success_rate(r, CORRECT), 2 / 3)
  # Only input 2 is correct and unbroken: 1 of all 4.
  np.testing.assert_allclose(attacks.robust_accuracy(r, CORRECT), 1 / 4)


def test_rates_under_jit_and_without_correct_inputs():
  r = _result(PER_RESTART)
  rates = jax.jit(lambda r, c: (attacks.success_rate(r, c), attacks.robust_accuracy(r, c)))
  np.testing.assert_allclose(rates(r, CORRECT), [3 / 9, 1 / 4])
  none = jnp.zeros(4, bool)
  assert np.isnan(attacks.success_rate(r, none))
  assert np.isnan(attacks.worst_case_success_rate(r, none))
  assert float(attacks.robust_accuracy(r, none)) == 0.0
