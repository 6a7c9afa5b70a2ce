"""dmr.geometry: the affine matrix, the corner-aligned bilinear warp, theta ranges and sampling."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmr import geometry

transform = jax.jit(geometry.transform)


def random_images(batch=3, size=28, seed=0):
  return np.random.default_rng(seed).random((batch, size, size, 1), dtype=np.float32)


def codes(batch, **values):
  """Identity codes [batch, 6] with the named components replaced."""
  theta = np.tile(geometry.IDENTITY_THETA, (batch, 1))
  for name, value in values.items():
    theta[:, geometry.THETA_NAMES.index(name)] = value
  return theta


def test_affine_matrix_follows_the_papers_formula():
  theta = np.array([0.1, -0.2, 0.3, -0.4, 0.9, 0.7], np.float32)
  tx, ty, l1, l2, s, r = theta
  expected = [[math.cos(r) * s - math.sin(r) * s * l1, -math.sin(r) * s + math.cos(r) * s * l1, tx],
              [math.cos(r) * s * l2 + math.sin(r) * s, -math.sin(r) * s * l2 + math.cos(r) * s, ty]]
  np.testing.assert_allclose(geometry.affine_matrix(theta), expected, atol=1e-6)
  np.testing.assert_allclose(geometry.affine_matrix(geometry.IDENTITY_THETA),
                             [[1, 0, 0], [0, 1, 0]], atol=0)
  assert geometry.affine_matrix(np.zeros((4, 5, 6))).shape == (4, 5, 2, 3)


def test_identity_returns_the_image():
  images = random_images()
  out = transform(images, codes(3))
  assert np.abs(np.asarray(out) - images).max() <= 1e-6


@pytest.mark.parametrize("pixels", [1, 3])
def test_integer_translation_shifts_exactly_with_zero_padding(pixels):
  images = random_images(batch=2, size=20)
  step = 2.0 / (20 - 1)  # one pixel in corner-aligned coordinates
  # out(p) = image(p + t): content moves left (tx > 0) and up (ty > 0).
  out = np.asarray(transform(images, codes(2, tx=pixels * step)))
  np.testing.assert_allclose(out[:, :, :-pixels], images[:, :, pixels:], atol=1e-5)
  assert np.abs(out[:, :, -pixels:]).max() == 0.0
  out = np.asarray(transform(images, codes(2, ty=pixels * step)))
  np.testing.assert_allclose(out[:, :-pixels], images[:, pixels:], atol=1e-5)
  assert np.abs(out[:, -pixels:]).max() == 0.0


def test_translation_beyond_the_border_gives_zeros():
  out = transform(random_images(), codes(3, tx=2.1))
  assert np.abs(np.asarray(out)).max() == 0.0


def test_quarter_rotation_is_rot90_counterclockwise():
  images = random_images(batch=2, size=16)
  out = np.asarray(transform(images, codes(2, rotation=math.pi / 2)))
  np.testing.assert_allclose(out, np.rot90(images, 1, axes=(1, 2)), atol=1e-5)
  assert np.abs(out - np.rot90(images, -1, axes=(1, 2))).max() > 0.5


def test_scale_two_zooms_out_around_the_centre():
  """scale s samples the input at s times the distance from the centre: s = 2 halves the glyph."""
  image = np.zeros((1, 29, 29, 1), np.float32)
  image[0, 14, 10:19] = 1.0  # a horizontal bar of 9 pixels through the centre
  out = np.asarray(transform(image, codes(1, scale=2.0)))
  np.testing.assert_allclose(out[0, 14, :, 0].sum(), 4 + 2 * 0.5, atol=1e-5)
  assert out[0, 14, 14, 0] == 1.0 and out[0, :14].max() == 0.0


def test_transform_is_vmap_friendly_and_clips():
  images = random_images(batch=4) * 3.0
  theta = geometry.sample_theta(jax.random.key(1), (4,), *geometry.FONTS_HARD.box)
  batched = transform(images, theta)
  one_by_one = jax.jit(jax.vmap(lambda x, t: geometry.transform(x[None], t[None])[0]))
  np.testing.assert_allclose(one_by_one(images, theta), batched, atol=3e-5)
  assert float(batched.min()) == 0.0 and float(batched.max()) == 1.0


def test_gradients_match_finite_differences_in_float64():
  with jax.enable_x64(True):
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.random((2, 12, 12, 1)) * 0.5)
    theta = jnp.asarray([[0.05, -0.1, 0.2, -0.1, 0.9, 0.4], [-0.1, 0.03, -0.3, 0.2, 1.1, -1.0]])
    weights = jnp.asarray(rng.standard_normal((2, 12, 12, 1)))
    loss = jax.jit(lambda t, x: jnp.sum(weights * geometry.warp(x, geometry.affine_matrix(t))))
    grad_theta, grad_images = jax.jit(jax.grad(loss, argnums=(0, 1)))(theta, images)
    assert grad_theta.dtype == jnp.float64 and np.abs(np.asarray(grad_theta)).min() > 0.0
    h = 1e-6
    steps = h * jnp.eye(12).reshape(12, 2, 6)  # one step per (row, component)
    losses = jax.vmap(lambda e: jnp.stack([loss(theta + e, images), loss(theta - e, images)]))
    plus, minus = losses(steps).T
    np.testing.assert_allclose(grad_theta.reshape(-1), (plus - minus) / (2 * h), rtol=1e-5,
                               atol=1e-6)
    direction = jnp.asarray(rng.standard_normal(images.shape))
    numeric = (loss(theta, images + h * direction) - loss(theta, images - h * direction)) / (2 * h)
    np.testing.assert_allclose(jnp.sum(grad_images * direction), numeric, rtol=1e-6)
  assert jnp.zeros(1).dtype == jnp.float32  # x64 did not leak


def test_theta_range_box_contains_and_clip():
  box = geometry.FONTS_HARD
  np.testing.assert_allclose(box.box[0], [-0.2, -0.2, -0.5, -0.5, 0.75, -math.pi / 2], rtol=1e-6)
  np.testing.assert_allclose(box.box[1], [0.2, 0.2, 0.5, 0.5, 1.15, math.pi / 2], rtol=1e-6)
  assert box.contains(geometry.IDENTITY_THETA)
  outside = codes(2, scale=1.3)
  assert not box.contains(outside).any()
  assert box.contains(np.asarray(box.clip(outside))).all()
  assert hash(geometry.ThetaRange(list(box.lo), list(box.hi))) == hash(box)
  for name in ("easy", "moderate", "hard"):
    assert geometry.FONTS_RANGES[name].contains(geometry.IDENTITY_THETA)
  assert geometry.AUGMENTATION.contains(geometry.IDENTITY_THETA)
  with pytest.raises(ValueError, match="lower bounds"):
    geometry.ThetaRange(lo=(0,) * 6, hi=(-1,) * 6)


def test_sample_theta_covers_the_whole_box_including_scale():
  lo, hi = geometry.AUGMENTATION.box
  theta = np.asarray(geometry.sample_theta(jax.random.key(0), (20000,), lo, hi))
  assert theta.shape == (20000, 6) and theta.dtype == np.float32
  assert geometry.AUGMENTATION.contains(theta).all()
  # The original code's augmentation always hit the minimum scale; here each component is
  # uniform: it reaches both ends and has the box centre as its mean.
  span = hi - lo
  np.testing.assert_array_less(theta.min(0) - lo, 0.01 * span)
  np.testing.assert_array_less(hi - theta.max(0), 0.01 * span)
  np.testing.assert_allclose(theta.mean(0), (lo + hi) / 2, atol=0.01 * span.max())
  again = geometry.sample_theta(jax.random.key(0), (20000,), lo, hi)
  np.testing.assert_array_equal(theta, again)
