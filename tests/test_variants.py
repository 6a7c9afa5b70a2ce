"""Training variants: each second half stays in its constraint set, raises the loss, and is the
share of the batch it should be; the safe on-manifold half; the training attack's reach."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dmr import config as dmr_config
from dmr import geometry
from dmr.manifolds import learned
from dmr.train import variants
from tests.test_config import get_config

B, H = 20, 6  # Batch size, image side.


def linear_logits(w, x):
  """Two classes: logit 1 = w . x, logit 0 = 0."""
  score = x.reshape(x.shape[0], -1) @ w
  return jnp.stack([jnp.zeros_like(score), score], axis=1)


def data(seed=0):
  rng = np.random.default_rng(seed)
  w = jnp.asarray(rng.standard_normal(H * H), jnp.float32)
  x = rng.uniform(0.2, 0.8, (B, H, H, 1)).astype(np.float32)
  return jax.tree_util.Partial(linear_logits, w), w, x, np.zeros(B, np.int32)


def loss(logits_fn, x, y):
  return float(jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits_fn(x), y)))


def training_spec(preset="quick"):
  a = get_config("fashion", preset).adversarial_training
  return dmr_config.attack_spec(a, a.off_eps)


def test_off_adv_half_reaches_the_loss_maximum_of_its_ball():
  """The training attack keeps the highest-loss iterate over all steps: for a linear model it is
  the corner x + eps sign(w) of the ball (clipped to the box), not the first successful iterate."""
  logits_fn, w, x, y = data()
  spec = training_spec()
  x_adv = np.asarray(variants.off_manifold(spec)(logits_fn, x, y, jax.random.key(0), None))
  corner = np.clip(x + spec.eps * np.sign(np.asarray(w)).reshape(1, H, H, 1), 0.0, 1.0)
  # atol: the attack keeps its result strictly inside the ball in float32 (a few ulps inward).
  np.testing.assert_allclose(x_adv, corner, atol=1e-5)
  assert np.max(np.abs(x_adv - x)) <= spec.eps + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
  assert loss(logits_fn, x_adv, y) > loss(logits_fn, x, y) + 1.0


@pytest.mark.parametrize("variant", ["off_adv", "stn_augm"])
def test_strength_measures_half_of_each_batch(variant):
  logits_fn, _, x, y = data()
  half, aux = variants.second_half(variant, lambda kind: training_spec(),
                                   geometry.AUGMENTATION, {}, B)
  x2 = np.concatenate([x, x])
  strength = variants.training_attack_strength(half, logits_fn, x2, np.concatenate([y, y]), aux,
                                               jax.random.key(1), batch_size=B, batches=2)
  assert strength["train_adversarial_share"] == pytest.approx(0.5)
  assert strength["train_adversarial_share_min"] == pytest.approx(0.5)
  if variant == "off_adv":
    assert strength["train_attack_linf"] == pytest.approx(0.3, abs=1e-5)
    assert strength["train_attack_success"] > 0.5
  else:
    assert 0 < strength["train_attack_l2"]


def test_stn_adv_half_raises_the_loss_within_its_range():
  logits_fn, _, x, y = data()
  spec = training_spec("smoke").replace(unroll=False)  # 3 steps, one loop body: fast to compile.
  half = variants.stn_adversarial(spec, geometry.AUGMENTATION)
  x_adv = half(logits_fn, x, y, jax.random.key(2), None)
  assert loss(logits_fn, x_adv, y) > loss(logits_fn, x, y)


def test_safe_codes_replace_only_codes_outside_the_prior_by_qualifying_ones_of_their_class():
  mu = np.array([[0.5, 0.1], [3.0, 0.0], [-1.0, 1.0], [0.0, -2.5], [1.5, 1.5], [2.1, 0.0]],
                np.float32)
  y = np.array([0, 0, 1, 1, 1, 2])
  pool, size = learned.qualifying_codes(mu, y, 3)
  np.testing.assert_array_equal(size, [1, 2, 0])
  z = np.asarray(learned.safe_codes(jnp.asarray(mu), jnp.asarray(y), pool, size,
                                    jax.random.key(0)))
  np.testing.assert_array_equal(z[[0, 2, 4]], mu[[0, 2, 4]])  # Qualifying: kept.
  np.testing.assert_array_equal(z[1], mu[0])  # Class 0's only qualifying code.
  assert any(np.array_equal(z[3], mu[k]) for k in (2, 4))  # One of class 1's.
  assert np.all(np.abs(z[:5]) <= 2)


def test_qualifying_draws_cover_the_class_pool():
  mu = np.array([[0.0, 0.0], [1.0, 1.0], [-1.0, 0.5], [5.0, 5.0]], np.float32)
  y = np.zeros(4, np.int32)
  pool, size = learned.qualifying_codes(mu, y, 1)
  drawn = {tuple(np.asarray(learned.safe_codes(jnp.asarray(mu[3:]), jnp.asarray(y[3:]), pool,
                                               size, jax.random.key(k)))[0]) for k in range(40)}
  assert drawn == {tuple(m) for m in mu[:3]}


@pytest.mark.parametrize("name", ["fashion", "emnist", "celeba", "fonts"])
@pytest.mark.parametrize("preset", dmr_config.PRESETS)
def test_every_preset_trains_against_the_whole_ball(name, preset):
  a = get_config(name, preset).adversarial_training
  assert a.steps * a.step_size >= max(a.off_eps, a.on_eps, a.stn_eps) - 1e-9


def test_a_training_attack_that_cannot_reach_its_ball_is_rejected():
  c = get_config("fashion", "quick")
  c.adversarial_training.step_size = 0.005
  with pytest.raises(ValueError, match=r"config.adversarial_training.step_size=0.005 is invalid; "
                     r"allowed: >= 0.03 \(steps x step_size >= the largest training eps 0.3"):
    dmr_config.validate(c)
