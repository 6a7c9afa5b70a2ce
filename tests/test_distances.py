"""Claim 1's measure on a synthetic manifold (a linear subspace) whose off-manifold parts are known."""
import numpy as np
import pytest

from dmr import distances

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


def test_references_bracket_the_share_and_flag_a_coarse_fit():
  mean, basis = subspace()
  x, x_adv = off_manifold_data(mean, basis)
  on_start = (mean + np.random.default_rng(2).standard_normal((N, K)) @ basis.T)
  on_adv = on_start + 0.5 * (np.random.default_rng(3).standard_normal((N, K)) @ basis.T)
  shape = (N, 8, 8, 1)
  summary, arrays = distances.manifold_distances(
      lambda rows: projector(mean, basis), np.arange(N), x, x_adv, np.arange(N),
      on_start.reshape(shape), on_adv.reshape(shape), seed=0)
  assert summary["off_manifold_fraction"] == pytest.approx(0.36, rel=1e-5)
  # A random direction leaves a K-dim subspace of R^D with (D - K) / D of its squared norm.
  assert summary["random_off_manifold_fraction"] == pytest.approx((D - K) / D, abs=0.05)
  assert summary["on_off_manifold_fraction"] == pytest.approx(0.0, abs=1e-6)
  assert summary["test_distance"] == pytest.approx(3.0) and summary["perturbation_norm"] == (
      pytest.approx(1.0))
  assert summary["fit_too_coarse"] is True
  assert set(arrays) == {"test_distance", "off_distance", "on_distance", "leaving_sq",
                         "perturbation_sq", "random_leaving_sq", "random_perturbation_sq",
                         "on_leaving_sq", "on_perturbation_sq"}
  np.testing.assert_allclose(arrays["random_perturbation_sq"], arrays["perturbation_sq"],
                             rtol=1e-5)
  close, close_adv = off_manifold_data(mean, basis, distance=0.5)
  summary, _ = distances.manifold_distances(
      lambda rows: projector(mean, basis), np.arange(N), close, close_adv, np.arange(N),
      on_start.reshape(shape), on_adv.reshape(shape), seed=0)
  assert summary["fit_too_coarse"] is False


def test_no_successful_example_gives_empty_arrays_and_nan_shares():
  """A run whose reference model no attack broke still finishes its distances stage."""
  x = np.zeros((0, 8, 8, 1), np.float32)
  unused = lambda rows: lambda images, init: pytest.fail("nothing to project")
  summary, arrays = distances.manifold_distances(unused, np.arange(0), x, x, np.arange(0), x, x,
                                                 seed=0)
  assert summary["images"] == 0 and np.isnan(summary["off_manifold_fraction"])
  assert all(a.shape == (0,) for a in arrays.values())
