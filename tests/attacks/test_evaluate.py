"""evaluate on a hand-made model and hand-made attacks: which inputs are attacked, worst case
over attacks, re-verification of every returned x_adv, per-sample records."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmr.attacks import AttackResult
from dmr.attacks.evaluate import NOT_BROKEN, evaluate

EPS = 0.1


def logits_fn(x):
  """Two classes: logits (x_0, x_1), so the label-0 margin is x_1 - x_0."""
  return x[:, :2]


# label 0 everywhere. Row 0: margin -0.05 (breakable by attack A), row 1: -0.06 (breakable by
# attack B only), row 2: -0.5 (robust), row 3: +0.4 (misclassified clean).
X = np.array([[0.50, 0.45], [0.53, 0.47], [0.80, 0.30], [0.20, 0.60]], np.float32)
Y = np.zeros(4, np.int32)


def shift_rows(rows_to_break, by=0.04):
  """An attack moving (x_0, x_1) by (-by, +by) on inputs equal to X[rows_to_break]; claims
  success everywhere. Records the inputs it was given."""
  seen = []

  def attack(logits_fn, x, y, *, key, eps, norm, bounds):
    seen.append(np.asarray(x))
    move = np.array([[-by, by]], np.float32)
    hit = np.array([any(np.array_equal(row, X[i]) for i in rows_to_break) for row in x])
    x_adv = np.where(hit[:, None], x + move, x)
    return AttackResult(jnp.asarray(x_adv), jnp.ones(len(x), bool), jnp.ones((1, len(x)), bool),
                        jnp.zeros(len(x)))

  attack.seen = seen
  return attack


def forged(x_adv_of):
  def attack(logits_fn, x, y, *, key, eps, norm, bounds):
    return AttackResult(jnp.asarray(x_adv_of(np.asarray(x))), jnp.ones(len(x), bool),
                        jnp.ones((1, len(x)), bool), jnp.zeros(len(x)))
  return attack


def _evaluate(attacks, batch_size=4):
  return evaluate(logits_fn, X, Y, key=jax.random.key(0), eps=EPS, attacks=attacks,
                  batch_size=batch_size, bounds=(0.0, 1.0))


def test_records_of_a_hand_made_case():
  a, b = shift_rows([0]), shift_rows([1])
  a.__name__, b.__name__ = "a", "b"
  ev = _evaluate([a, b])
  np.testing.assert_array_equal(ev.clean_correct, [True, True, True, False])
  np.testing.assert_array_equal(ev.robust, [False, False, True, False])
  assert ev.robust_accuracy == 0.25 and ev.clean_accuracy == 0.75
  np.testing.assert_array_equal(ev.broken_by, [0, 1, NOT_BROKEN, NOT_BROKEN])
  records = ev.records()
  assert [r["broken_by"] for r in records] == ["a", "b", None, None]
  np.testing.assert_allclose(ev.margin, [0.03, 0.02, -0.5, 0.4], atol=1e-6)
  np.testing.assert_allclose(ev.perturbation_norm, [0.04, 0.04, 0.0, 0.0], atol=1e-6)
  np.testing.assert_allclose(ev.x_adv[:2], X[:2] + [[-0.04, 0.04]], atol=1e-7)
  np.testing.assert_array_equal(ev.x_adv[2:], X[2:])
  # both attacks claimed success on the robust row 2; a also on row 1 (which b then broke)
  np.testing.assert_array_equal(ev.rejected, [0, 1, 2, 0])


def test_a_robust_input_keeps_the_attacks_closest_approach():
  closer, farther = shift_rows([2], by=0.02), shift_rows([2], by=-0.04)
  ev = _evaluate([closer, farther])
  assert ev.robust[2] and ev.broken_by[2] == NOT_BROKEN
  np.testing.assert_allclose(ev.margin[2], -0.46, atol=1e-6)
  np.testing.assert_allclose(ev.x_adv[2], X[2] + [-0.02, 0.02], atol=1e-7)
  np.testing.assert_allclose(ev.perturbation_norm[2], 0.02, atol=1e-6)


def test_only_inputs_still_robust_are_attacked():
  a, b = shift_rows([0]), shift_rows([1])
  _evaluate([a, b])
  attacked = lambda attack: {tuple(row) for batch in attack.seen for row in batch}
  assert attacked(a) == {tuple(X[0]), tuple(X[1]), tuple(X[2])}   # not the misclassified row 3
  assert attacked(b) == {tuple(X[1]), tuple(X[2])}                # not row 0, broken by a


def test_worst_case_over_attacks_whatever_their_order():
  a, b = shift_rows([0]), shift_rows([1])
  assert _evaluate([b, a]).robust_accuracy == _evaluate([a, b]).robust_accuracy == 0.25
  assert _evaluate([a]).robust_accuracy == 0.5


def just_outside_the_ball(x):
  """x_1 raised by the smallest float32 amount whose float32 difference exceeds EPS."""
  x_adv = x.copy()
  x_adv[:, 1] = x[:, 1] + np.float32(EPS)
  while np.any(x_adv[:, 1] - x[:, 1] <= np.float32(EPS)):
    x_adv[:, 1] = np.where(x_adv[:, 1] - x[:, 1] <= np.float32(EPS),
                           np.nextafter(x_adv[:, 1], np.float32(2)), x_adv[:, 1])
  return x_adv


@pytest.mark.parametrize("forge", [
    lambda x: np.full_like(x, np.nan),                      # non-finite
    lambda x: x + np.array([[-0.3, 0.3]], np.float32),      # outside the eps-ball
    just_outside_the_ball,                                  # outside by float rounding only
    lambda x: x + np.array([[0.0, 2.0]], np.float32),       # outside the box
])
def test_re_verification_rejects_forged_successes(forge):
  ev = _evaluate([forged(forge)])
  np.testing.assert_array_equal(ev.robust, [True, True, True, False])
  np.testing.assert_array_equal(ev.rejected, [1, 1, 1, 0])
  np.testing.assert_array_equal(ev.x_adv, X)


def test_batches_and_padding_give_the_same_records():
  a = shift_rows([0, 1])
  one = _evaluate([a], batch_size=4)
  small = _evaluate([shift_rows([0, 1])], batch_size=3)
  for field in ("robust", "broken_by", "margin", "perturbation_norm", "rejected"):
    np.testing.assert_array_equal(getattr(one, field), getattr(small, field))


def test_bad_labels_are_rejected_before_any_attack():
  a = shift_rows([0])
  with pytest.raises(ValueError, match=r"labels y must lie in \[0, 2\)"):
    evaluate(logits_fn, X, np.array([0, 0, 2, 0]), key=jax.random.key(0), eps=EPS, attacks=[a])
  assert not a.seen


def test_apgd_and_square_by_name_break_a_linear_model():
  # at x = 0.5 the margin z_1 - z_0 = x_1 + (x_2 + ... + x_15) / 10 - x_0 - 0.9 is -0.2;
  # L-inf 0.1 can add 0.34.
  w = np.zeros((16, 4), np.float32)
  w[0, 0], w[1, 1], w[2:, 1], w[:, 2], w[:, 3] = 1.0, 1.0, 0.1, -1.0, -2.0
  images = lambda x: x.reshape(x.shape[0], -1) @ jnp.asarray(w) + jnp.array([0.9, 0, 0, 0])
  x = np.full((3, 4, 4, 1), 0.5, np.float32)
  y = np.zeros(3, np.int32)
  ev = evaluate(images, x, y, key=jax.random.key(0), eps=EPS, batch_size=4, steps=10,
                square_queries=50)
  assert ev.robust_accuracy == 0.0 and not ev.rejected.any()
  assert ev.attacks == ("apgd-ce", "apgd-t", "fab-t", "square")
  np.testing.assert_array_equal(ev.broken_by, [0, 0, 0])


def test_per_attack_robust_accuracy_and_seconds():
  a, b = shift_rows([0]), shift_rows([1])
  a.__name__, b.__name__ = "a", "b"
  ev = _evaluate([a, b])
  np.testing.assert_allclose(ev.robust_accuracy_after(), [0.5, 0.25])
  per = ev.per_attack()
  assert [(p["attack"], p["broken"], p["robust_accuracy"]) for p in per] == [
      ("a", 1, 0.5), ("b", 1, 0.25)]
  assert ev.seconds.shape == (2,) and np.all(ev.seconds > 0)   # each attack measured
  lines = ev.summary().splitlines()
  assert lines[0] == "clean accuracy 75.00%" and "after b" in lines[2] and "25.00%" in lines[2]


RNG = np.random.default_rng(0)
LINEAR_W = jnp.asarray(RNG.normal(size=(16, 4)), jnp.float32)


def linear_images(x):
  return x.reshape(x.shape[0], -1) @ LINEAR_W


def _l2_distances(x, y):
  """Per row, the distance to the closest boundary of the linear model (no box binds here)."""
  w, flat = np.asarray(LINEAR_W, np.float64), np.asarray(x, np.float64).reshape(len(x), -1)
  return np.array([min(abs(flat[i] @ (w[:, k] - w[:, y[i]])) / np.linalg.norm(w[:, k] - w[:, y[i]])
                       for k in range(4) if k != y[i]) for i in range(len(x))])


@pytest.mark.parametrize("norm", ["l2", "l1"])
def test_every_norm_has_a_working_default_ensemble(norm):
  x = jnp.asarray(np.random.default_rng(1).uniform(0.3, 0.7, (24, 4, 4, 1)), jnp.float32)
  y = np.asarray(jnp.argmax(linear_images(x), axis=1), np.int32)
  distance = _l2_distances(x, y)
  eps = float(np.median(distance)) * (1.0 if norm == "l2" else 4.0)
  ev = evaluate(linear_images, x, y, key=jax.random.key(0), eps=eps, norm=norm, steps=20)
  assert ev.attacks == {"l2": ("apgd-ce", "apgd-t", "fab-t"), "l1": ("apgd-ce", "apgd-t")}[norm]
  assert ev.clean_accuracy == 1.0 and not ev.rejected.any()
  assert np.all(ev.perturbation_norm <= eps)
  if norm == "l2":   # the closed form: exactly the inputs within eps of a boundary break
    clear = np.abs(distance - eps) > 0.02 * eps
    np.testing.assert_array_equal(~ev.robust[clear], (distance <= eps)[clear])


def test_fab_t_alone_breaks_what_lies_within_eps():
  x = jnp.asarray(np.random.default_rng(2).uniform(0.3, 0.7, (24, 4, 4, 1)), jnp.float32)
  y = np.asarray(jnp.argmax(linear_images(x), axis=1), np.int32)
  distance = _l2_distances(x, y)
  eps = float(np.median(distance))
  ev = evaluate(linear_images, x, y, key=jax.random.key(0), eps=eps, norm="l2",
                attacks=("fab-t",), steps=20)
  clear = np.abs(distance - eps) > 0.02 * eps
  np.testing.assert_array_equal(ev.broken_by[clear] == 0, (distance <= eps)[clear])


@pytest.mark.parametrize("attack, norm, supported", [("square", "l2", "linf"),
                                                     ("fab-t", "l1", "linf or l2")])
def test_an_attack_without_the_norm_is_rejected_naming_what_it_supports(attack, norm, supported):
  a = shift_rows([0])
  with pytest.raises(ValueError, match=f"attack '{attack}' supports norm {supported}, not "
                                       f"'{norm}'"):
    evaluate(logits_fn, X, Y, key=jax.random.key(0), eps=EPS, norm=norm, attacks=[a, attack])
  assert not a.seen


def test_square_in_the_ensemble_states_the_layout():
  x = np.full((2, 1, 4, 4), 0.5, np.float32)   # NCHW
  images = lambda x: linear_images(jnp.transpose(x, (0, 2, 3, 1)))
  y = np.asarray(jnp.argmax(images(x), axis=1), np.int32)
  with pytest.raises(ValueError, match="pass layout='NCHW'"):
    evaluate(images, x, y, key=jax.random.key(0), eps=EPS, attacks=("square",))
  ev = evaluate(images, x, y, key=jax.random.key(0), eps=EPS, attacks=("square",),
                square_queries=20, layout="NCHW")
  assert ev.x_adv.shape == x.shape and np.all(np.abs(ev.x_adv - x) <= EPS)
