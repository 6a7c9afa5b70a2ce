"""latent_pgd on a linear decoder and a linear classifier, where the optimum is analytic."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmr import attacks

LATENT, PIXELS = 4, 10
RNG = np.random.default_rng(0)  # test data from numpy: no random kernels to compile
DECODER = RNG.normal(size=(LATENT, PIXELS)).astype(np.float32)
CLASSIFIER = RNG.normal(size=(PIXELS, 2)).astype(np.float32)
# margin for label 0 = z . (DECODER @ (w_1 - w_0)) + const
LATENT_W = DECODER @ (CLASSIFIER[:, 1] - CLASSIFIER[:, 0])


def decode(z):
  return z @ DECODER + 0.5


def classify(x):
  return x @ CLASSIFIER + jnp.array([4.0, 0.0])


@jax.jit
def margin_of_code(z):
  logits = classify(decode(z))
  return logits[:, 1] - logits[:, 0]


Z = jnp.asarray(RNG.uniform(-0.5, 0.5, size=(6, LATENT)), jnp.float32)
Y = jnp.zeros(6, jnp.int32)


def test_linf_optimum_inside_a_per_dimension_box():
  lo, hi = jnp.array([-0.6, -1.0, -0.55, -1.0]), jnp.array([0.6, 1.0, 1.0, 0.52])
  eps = 0.3
  r = attacks.latent_pgd(decode, classify, Z, Y, key=jax.random.key(1), eps=eps, box=(lo, hi),
                         steps=30, init="uniform", loss="margin", early_stop=False)
  # Ball and box are both per-coordinate intervals: the optimum moves each coordinate by eps
  # along sign(w), clipped into the box.
  want = np.clip(np.asarray(Z) + eps * np.sign(LATENT_W), np.asarray(lo), np.asarray(hi))
  np.testing.assert_allclose(r.z_adv, want, atol=1e-6)
  assert np.any(want != np.asarray(Z) + eps * np.sign(LATENT_W))   # the box did bind
  np.testing.assert_allclose(r.x_adv, decode(r.z_adv), atol=1e-6)
  np.testing.assert_allclose(r.loss, margin_of_code(r.z_adv), rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(r.success, np.asarray(margin_of_code(r.z_adv)) > 0)
  assert r.success_per_restart.shape == (1, 6)


def test_l2_optimum_without_box():
  eps = 0.8
  r = attacks.latent_pgd(decode, classify, Z, Y, key=jax.random.key(1), eps=eps, norm="l2",
                         steps=50, init="zero", loss="margin", early_stop=False)
  want = np.asarray(Z) + eps * LATENT_W / np.linalg.norm(LATENT_W)
  np.testing.assert_allclose(r.z_adv, want, atol=1e-5)
  np.testing.assert_allclose(r.loss, np.asarray(margin_of_code(Z)) + eps * np.linalg.norm(LATENT_W),
                             rtol=1e-5)


def test_latent_validation():
  with pytest.raises(ValueError, match=r"z lies outside box=.*clip it into the box"):
    attacks.latent_pgd(decode, classify, Z, Y, key=jax.random.key(1), eps=0.3,
                       box=(-0.1, 0.1))
  with pytest.raises(ValueError, match=r"y must have shape \[B\] = \(6,\) to match z"):
    attacks.latent_pgd(decode, classify, Z, Y[:2], key=jax.random.key(1), eps=0.3)


def test_decode_fn_may_hold_per_row_data_with_restarts():
  """decode_fn is called on [B, d] codes matching z, so per-input data works with restarts."""
  offsets = jnp.arange(4.0)[:, None] * jnp.ones((4, 3))  # One row of data per input.
  decode_fn = lambda z: z + offsets
  logits_fn = lambda x: jnp.stack([-jnp.sum(x, 1), jnp.sum(x, 1)], axis=1)
  z = jnp.zeros((4, 3))
  y = jnp.zeros(4, jnp.int32)
  r = attacks.latent_pgd(decode_fn, logits_fn, z, y, key=jax.random.key(0), eps=0.5,
                         restarts=3, steps=20, optimizer="sign", init="zero", early_stop=False)
  assert r.x_adv.shape == (4, 3) and r.success_per_restart.shape == (3, 4)
  np.testing.assert_allclose(r.x_adv, offsets + 0.5, atol=1e-5)  # The optimum of each row.
