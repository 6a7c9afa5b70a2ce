"""Claim 1's measure on a synthetic manifold (a linear subspace) whose off-manifold parts are known."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmr import distances, geometry

D, K, N = 64, 8, 50  # Ambient dimension, subspace dimension, images.


def subspace(seed=0):
  """(mean [D], basis [D, K] orthonormal) of an affine subspace of R^D."""
  rng = np.random.default_rng(seed)
  basis, _ = np.linalg.qr(rng.standard_normal((D, K)))
  return 0.5 + 0.1 * rng.standard_normal(D), basis


def projector(mean, basis):
  """project(images [N, 8, 8, 1], init) of the subspace (exact; init is ignored)."""

  def project(images, init):
    flat = images.reshape(len(images), -1) - mean
    codes = flat @ basis
    return codes, (mean + codes @ basis.T).reshape(images.shape)

  return project


def off_manifold_data(mean, basis, seed=1, distance=3.0, normal_norm=0.6, tangent_norm=0.8):
  """Test images at `distance` from the subspace and perturbations with a normal part of norm
  normal_norm and a tangent part of norm tangent_norm, the normal part anti-aligned with the
  image's own offset for half of the images (as box clipping does)."""
  rng = np.random.default_rng(seed)
  normal_of = lambda v: v - (v @ basis) @ basis.T
  unit = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)
  offset = distance * unit(normal_of(rng.standard_normal((N, D))))
  x = mean + rng.standard_normal((N, K)) @ basis.T + offset
  normal = unit(normal_of(rng.standard_normal((N, D))))
  normal[::2] = -unit(offset[::2])  # Straight back towards the manifold.
  tangent = unit(rng.standard_normal((N, K)) @ basis.T)
  delta = normal_norm * normal + tangent_norm * tangent
  shape = (N, 8, 8, 1)
  return x.reshape(shape), (x + delta).reshape(shape)


def test_leaving_part_is_the_normal_component_even_far_from_the_manifold():
  mean, basis = subspace()
  x, x_adv = off_manifold_data(mean, basis)
  parts = distances.leaving_parts(projector(mean, basis), x, x_adv)
  np.testing.assert_allclose(parts.leaving_sq, 0.6**2, rtol=1e-6)
  np.testing.assert_allclose(parts.perturbation_sq, 0.6**2 + 0.8**2, rtol=1e-6)
  np.testing.assert_allclose(parts.distance, 3.0, rtol=1e-6)
  # The share is the known 0.36 / 1.0; the former d(x_adv)^2 - d(x)^2 estimate is far off.
  share = parts.leaving_sq.sum() / parts.perturbation_sq.sum()
  biased = np.sum(parts.adversarial_distance**2 - parts.distance**2) / parts.perturbation_sq.sum()
  assert share == pytest.approx(0.36, rel=1e-6)
  assert biased < 0.0


def decoder(mean, basis):
  """decode(codes) of the subspace: images [N, 8, 8, 1]."""
  return lambda codes: (mean + codes @ basis.T).reshape(len(codes), 8, 8, 1)


def on_manifold_data(mean, basis):
  shape = (N, 8, 8, 1)
  on_start = (mean + np.random.default_rng(2).standard_normal((N, K)) @ basis.T)
  on_adv = on_start + 0.5 * (np.random.default_rng(3).standard_normal((N, K)) @ basis.T)
  return on_start.reshape(shape), on_adv.reshape(shape)


def measure(project, decode, x, x_adv, on_start, on_adv):
  return distances.manifold_distances(lambda rows: project, lambda rows: decode, np.arange(N), x,
                                      x_adv, np.arange(N), on_start, on_adv, seed=0)


def test_references_bracket_the_share_on_a_linear_manifold():
  mean, basis = subspace()
  x, x_adv = off_manifold_data(mean, basis)
  summary, arrays = measure(projector(mean, basis), decoder(mean, basis), x, x_adv,
                            *on_manifold_data(mean, basis))
  assert summary["off_manifold_fraction"] == pytest.approx(0.36, rel=1e-5)
  # A direction along a linear manifold never leaves it, even 3 away from it.
  assert summary["tangent_off_manifold_fraction"] == pytest.approx(0.0, abs=1e-9)
  # A random direction leaves a K-dim subspace of R^D with (D - K) / D of its squared norm.
  assert summary["random_off_manifold_fraction"] == pytest.approx((D - K) / D, abs=0.05)
  assert summary["on_off_manifold_fraction"] == pytest.approx(0.0, abs=1e-6)
  assert summary["test_distance"] == pytest.approx(3.0) and summary["perturbation_norm"] == (
      pytest.approx(1.0))
  assert set(arrays) == {"test_distance", "off_distance", "on_distance", "leaving_sq",
                         "perturbation_sq", "tangent_leaving_sq", "tangent_perturbation_sq",
                         "random_leaving_sq", "random_perturbation_sq", "on_leaving_sq",
                         "on_perturbation_sq"}
  for reference in ("tangent", "random"):  # Each image's reference has its perturbation's norm.
    np.testing.assert_allclose(arrays[f"{reference}_perturbation_sq"], arrays["perturbation_sq"],
                               rtol=1e-5)


def test_a_noisy_projection_raises_the_tangent_share_by_its_error():
  """A projection whose codes err by N(0, sigma^2 I_K) on every call: the residual of x + t differs
  from x's by the difference of two such errors, 2 K sigma^2 per image in expectation."""
  mean, basis = subspace()
  x, x_adv = off_manifold_data(mean, basis)
  exact, rng, sigma = projector(mean, basis), np.random.default_rng(4), 0.1

  def noisy(images, init):
    codes, _ = exact(images, init)
    codes = codes + sigma * rng.standard_normal(codes.shape)
    return codes, (mean + codes @ basis.T).reshape(images.shape)

  summary, _ = measure(noisy, decoder(mean, basis), x, x_adv, *on_manifold_data(mean, basis))
  assert summary["tangent_off_manifold_fraction"] == pytest.approx(2 * K * sigma**2, rel=0.25)
  assert summary["random_off_manifold_fraction"] == pytest.approx(
      (D - K) / D + 2 * K * sigma**2, abs=0.06)


def test_tangent_share_on_a_circle_is_its_analytic_floor():
  """A circle of radius R (a curved 1-dim manifold in a plane of R^D), images at distance a - R
  outside it: a tangent of length s at P(x) leaves, by this measure, the residual change of
  x + t, whose projection lies on the ray through it, ((rho - R) a / rho - (a - R),
  (rho - R) s / rho) in the (radial, tangent) frame, rho = sqrt(a^2 + s^2)."""
  radius, s = 1.0, 0.4
  plane = np.linalg.qr(np.random.default_rng(0).standard_normal((D, 2)))[0]  # [D, 2]
  centre = np.full(D, 0.5)

  def decode(theta):  # theta [N, 1] -> points [N, 8, 8, 1] of the circle.
    points = radius * np.concatenate([np.cos(theta), np.sin(theta)], axis=1) @ plane.T
    return (centre + points).reshape(len(theta), 8, 8, 1)

  def project(images, init):
    inside = (images.reshape(len(images), -1) - centre) @ plane
    theta = np.arctan2(inside[:, 1], inside[:, 0])[:, None]
    return theta, decode(theta)

  angles = np.linspace(0, 2 * np.pi, N, endpoint=False)
  radial = np.stack([np.cos(angles), np.sin(angles)], 1) @ plane.T  # [N, D] unit vectors
  u = np.random.default_rng(1).standard_normal((N, D))
  delta = (s * u / np.linalg.norm(u, axis=1, keepdims=True)).reshape(N, 8, 8, 1)
  floors = []
  for distance in (0.0, 0.5, 2.0):
    a = radius + distance
    x = (centre + a * radial).reshape(N, 8, 8, 1)
    x_adv = x + delta
    summary, _ = distances.manifold_distances(
        lambda rows: project, lambda rows: decode, np.arange(N), x, x_adv, np.arange(0),
        x[:0], x[:0], seed=0)
    rho = np.sqrt(a**2 + s**2)
    expected = (((rho - radius) * a / rho - distance)**2 + ((rho - radius) * s / rho)**2) / s**2
    assert summary["tangent_off_manifold_fraction"] == pytest.approx(expected, rel=1e-3)
    floors.append(expected)
  # The floor is curvature alone on the manifold and grows with the distance from it.
  assert floors[0] < 0.05 and floors[1] < floors[2] and floors[2] > 0.4, floors


def test_no_successful_example_gives_empty_arrays_and_nan_shares():
  """A run whose reference model no attack broke still finishes its distances stage."""
  x = np.zeros((0, 8, 8, 1), np.float32)
  unused = lambda rows: lambda images, init: pytest.fail("nothing to project")
  summary, arrays = distances.manifold_distances(unused, unused, np.arange(0), x, x,
                                                 np.arange(0), x, x, seed=0)
  assert summary["images"] == 0 and np.isnan(summary["off_manifold_fraction"])
  assert all(a.shape == (0,) for a in arrays.values())


# ---- The tangent-space share (claim 1 as a true share) ------------------------------------------


def linear_decode(matrix, offset, codes):
  """The affine manifold offset + matrix @ z as a decoder: images [B, 8, 8, 1]."""
  return (codes @ matrix.T + offset).reshape(len(codes), 8, 8, 1)


def tangent_shares(decode_fn, codes, delta, aux=()):
  parts = distances.tangent_normal_parts(decode_fn, codes, delta, aux)
  return np.asarray(parts.normal_sq) / np.asarray(parts.perturbation_sq)


def test_tangent_share_of_a_linear_manifold_is_exact():
  rng = np.random.default_rng(0)
  matrix = rng.standard_normal((D, K)).astype(np.float32)
  decode_fn = jax.tree_util.Partial(linear_decode, matrix, np.zeros(D, np.float32))
  codes = rng.standard_normal((200, K)).astype(np.float32)
  along = (rng.standard_normal((200, K)) @ matrix.T).astype(np.float32)
  basis, _ = np.linalg.qr(matrix)
  random = rng.standard_normal((200, D)).astype(np.float32)
  normal = (random - (random @ basis) @ basis.T).astype(np.float32)
  assert np.max(tangent_shares(decode_fn, codes, along.reshape(-1, 8, 8, 1))) < 1e-5
  assert tangent_shares(decode_fn, codes, normal.reshape(-1, 8, 8, 1)) == pytest.approx(1, abs=1e-5)
  shares = tangent_shares(decode_fn, codes, random.reshape(-1, 8, 8, 1))
  # A random direction's share is Beta((D - K) / 2, K / 2): mean 1 - K / D = 0.875, SD 0.058.
  assert np.mean(shares) == pytest.approx(1 - K / D, abs=0.015)
  assert np.all((shares >= 0) & (shares <= 1))


def test_tangent_share_drops_the_directions_a_rank_deficient_decoder_lacks():
  rng = np.random.default_rng(1)
  half = rng.standard_normal((D, K // 2)).astype(np.float32)
  matrix = np.concatenate([half, 2 * half], axis=1)  # rank K / 2
  decode_fn = jax.tree_util.Partial(linear_decode, matrix, np.zeros(D, np.float32))
  codes = rng.standard_normal((400, K)).astype(np.float32)
  random = rng.standard_normal((400, 8, 8, 1)).astype(np.float32)
  assert np.mean(tangent_shares(decode_fn, codes, random)) == pytest.approx(1 - K / 2 / D,
                                                                           abs=0.01)


def curved_decode(weights, codes):
  return jnp.tanh(codes @ weights.T).reshape(len(codes), 8, 8, 1)


def test_tangent_share_of_a_curved_manifold_along_and_across():
  """A tanh decoder: a small step along the manifold (a decoded code difference) has share ~0,
  any perturbation a share in [0, 1]."""
  rng = np.random.default_rng(2)
  weights = rng.standard_normal((D, K)).astype(np.float32) / np.sqrt(K)
  decode_fn = jax.tree_util.Partial(curved_decode, weights)
  codes = rng.standard_normal((100, K)).astype(np.float32)
  u = 1e-3 * rng.standard_normal((100, K)).astype(np.float32)
  step = np.asarray(decode_fn(codes + u), np.float64) - np.asarray(decode_fn(codes - u))
  assert np.max(tangent_shares(decode_fn, codes, step.astype(np.float32))) < 1e-3
  shares = tangent_shares(decode_fn, codes, rng.standard_normal((100, 8, 8, 1)).astype(np.float32))
  assert np.all((shares >= 0) & (shares <= 1)) and np.mean(shares) > 0.8


def test_tangent_share_on_the_known_fonts_manifold():
  """Renderings of a smooth prototype: theta's tangent (a central difference of the rendering)
  has share ~0, a random direction 1 - 6 / 784 on average."""
  rng = np.random.default_rng(3)
  v, u = np.mgrid[:28, :28] - 13.5
  blob = np.exp(-((u / 6) ** 2 + (v / 4) ** 2))[..., None]
  prototypes = np.repeat(blob[None], 64, axis=0).astype(np.float32) * 0.9
  lo, hi = geometry.FONTS_EASY.box
  theta = rng.uniform(lo, hi, size=(64, 6)).astype(np.float32)
  decode_fn = jax.tree_util.Partial(distances.fonts_decode)
  step = 1e-3 * rng.standard_normal((64, 6)).astype(np.float32)
  along = (np.asarray(geometry.transform(prototypes, theta + step), np.float64)
           - np.asarray(geometry.transform(prototypes, theta - step)))
  shares = tangent_shares(decode_fn, theta, along.astype(np.float32), (prototypes,))
  assert np.max(shares) < 0.02
  random = rng.standard_normal((64, 28, 28, 1)).astype(np.float32)
  shares = tangent_shares(decode_fn, theta, random, (prototypes,))
  assert np.mean(shares) == pytest.approx(1 - 6 / 784, abs=0.003)


def test_tangent_space_parts_reports_the_perturbation_and_a_random_direction():
  rng = np.random.default_rng(4)
  matrix = rng.standard_normal((D, K)).astype(np.float32)
  decode_fn = jax.tree_util.Partial(linear_decode, matrix, np.zeros(D, np.float32))
  codes = rng.standard_normal((300, K)).astype(np.float32)
  x = np.asarray(decode_fn(codes))
  x_adv = x + 0.1 * np.asarray(linear_decode(matrix, np.zeros(D, np.float32),
                                             rng.standard_normal((300, K)).astype(np.float32)))
  parts = distances.tangent_space_parts(decode_fn, codes, x, x_adv, seed=0)
  share = lambda kind: parts[f"{kind}normal_sq"].sum() / parts[f"{kind}perturbation_sq"].sum()
  assert share("tangent_") < 1e-4
  assert share("random_tangent_") == pytest.approx(1 - K / D, abs=0.01)
  np.testing.assert_allclose(parts["random_tangent_perturbation_sq"],
                             parts["tangent_perturbation_sq"], rtol=1e-4)
