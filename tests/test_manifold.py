"""The learned manifold (projection, latent box, on-manifold attack), decoding on both manifolds;
claim 1's local subspace."""
import jax
import jax.numpy as jnp
import numpy as np

from dmr import attacks, distances, parallel
from dmr.manifolds import known, learned, vaegans
from dmr.models import vaegan
from tests.test_fonts import small_fonts

LATENT = 4


def random_decoder(seed: int):
  """An untrained decoder 28x28x1 with latent size 4, as a jax.tree_util.Partial."""
  decoder = vaegan.Decoder((28, 28, 1), channels=4)
  variables = jax.jit(decoder.init)(jax.random.key(seed), jnp.zeros((1, LATENT)))
  return vaegan.make_decode_fn(decoder, variables)


def test_decoded_images_project_back_and_noise_stays_far():
  decode = random_decoder(0)
  z = jax.random.normal(jax.random.key(1), (6, LATENT))
  on_manifold = jax.jit(lambda f, z: f(z))(decode, z)
  start = z + 0.3 * jax.random.normal(jax.random.key(2), z.shape)  # A nearby code, as mu would be.
  noise = jax.random.uniform(jax.random.key(3), on_manifold.shape)
  images = jnp.concatenate([on_manifold, noise])
  result = learned.project_onto_decoder(decode, images, jnp.concatenate([start, start]),
                                         key=jax.random.key(4), restarts=2)
  initial = np.linalg.norm((jax.jit(lambda f, z: f(z))(decode, start) - on_manifold)
                           .reshape(6, -1), axis=1)
  near, far = np.asarray(result.distance[:6]), np.asarray(result.distance[6:])
  assert result.z.shape == (12, LATENT) and result.images.shape == images.shape
  assert np.all(near < 0.1 * initial), (near, initial)
  assert np.all(far > 50 * near.max()), (far, near)
  np.testing.assert_allclose(result.distance, np.linalg.norm(
      np.asarray(images - result.images).reshape(12, -1), axis=1), rtol=1e-5)


def affine_subspace_data(n=300, dims=5, size=8, seed=0):
  """n images [n, size, size, 1] on the affine subspace mean + span(basis), basis [dims, D]
  orthonormal; returns (images, mean, basis)."""
  rng = np.random.default_rng(seed)
  d = size * size
  basis = np.linalg.qr(rng.normal(size=(d, dims)))[0].T
  mean = rng.uniform(0.3, 0.7, d)
  coefficients = rng.normal(scale=0.5, size=(n, dims))
  images = (mean + coefficients @ basis).reshape(n, size, size, 1).astype(np.float32)
  return images, mean, basis


def test_pca_finds_the_subspace_and_neighbours_are_the_nearest_images():
  x, _, basis = affine_subspace_data()
  index = distances.build_neighbour_index(x, dims=40)
  assert index.components.shape == (64, 40) and index.codes.shape == (300, 40)
  top = np.asarray(index.components[:, :5])
  np.testing.assert_allclose(top @ (top.T @ basis.T), basis.T, atol=1e-4)  # Spans the basis.
  queries = x[:7] + 0.01
  found = np.asarray(distances.nearest_neighbours(index, queries, k=10))
  pixel_distances = np.linalg.norm((queries[:, None] - x[None]).reshape(7, 300, -1), axis=2)
  expected = np.argsort(pixel_distances, axis=1)[:, :10]
  assert [set(row) for row in found] == [set(row) for row in expected]


def test_local_subspace_residuals_and_angles():
  x_train, mean, basis = affine_subspace_data()
  rng = np.random.default_rng(1)
  x = (mean + rng.normal(scale=0.3, size=(4, 5)) @ basis).reshape(4, 8, 8, 1).astype(np.float32)
  index = distances.build_neighbour_index(x_train, dims=40)
  neighbours = x_train[np.asarray(distances.nearest_neighbours(index, x, k=50))]
  orthogonal = rng.normal(size=(4, 64))
  orthogonal -= orthogonal @ basis.T @ basis  # Out of the subspace.
  orthogonal = 0.5 * orthogonal / np.linalg.norm(orthogonal, axis=1, keepdims=True)
  inside = 0.5 * rng.normal(size=(4, 5)) @ basis
  x_off = (x.reshape(4, -1) + orthogonal).reshape(x.shape).astype(np.float32)
  x_on = (x.reshape(4, -1) + inside).reshape(x.shape).astype(np.float32)

  off = distances.local_subspace_distances(x, x_off, neighbours)
  np.testing.assert_allclose(off.clean, 0.0, atol=1e-4)  # x lies in the neighbours' span.
  np.testing.assert_allclose(off.angle, 90.0, atol=0.1)
  np.testing.assert_allclose(off.perturbation, 0.5, atol=1e-4)
  np.testing.assert_allclose(off.adversarial, 0.5, atol=1e-4)
  on = distances.local_subspace_distances(x, x_on, neighbours)
  np.testing.assert_allclose(on.angle, 0.0, atol=0.5)
  np.testing.assert_allclose(on.perturbation, 0.0, atol=1e-4)
  assert np.isnan(distances.local_subspace_distances(x, x, neighbours).angle).all()


def test_latent_box_and_prior_filter():
  codes = jnp.array([[0.5, -1.0], [1.5, 2.5], [-2.0, 0.0]])
  lo, hi = vaegans.latent_box(codes)
  np.testing.assert_array_equal(lo, [-2.0, -1.0])
  np.testing.assert_array_equal(hi, [1.5, 2.5])
  np.testing.assert_array_equal(vaegans.within_prior(codes), [True, False, True])


def linear_decoder(seed: int):
  """decode(z [B, 4]) = sigmoid(z A) as 28x28x1 images: images that change a lot with z."""
  a = jax.random.normal(jax.random.key(seed), (LATENT, 28 * 28))
  return jax.tree_util.Partial(lambda a, z: jax.nn.sigmoid(z @ a).reshape(-1, 28, 28, 1), a)


def test_on_manifold_attack_uses_each_images_class_decoder():
  decoders = [linear_decoder(10 + k) for k in range(3)]
  w = 0.1 * jax.random.normal(jax.random.key(0), (28 * 28, 3))
  logits_fn = jax.tree_util.Partial(lambda w, x: (x.reshape(x.shape[0], -1) - 0.5) @ w, w)
  # Per class, the first 4 of 60 random codes whose decoding the classifier gets right; shuffled.
  candidates = 0.5 * jax.random.normal(jax.random.key(1), (60, LATENT))
  rows = [np.flatnonzero(np.argmax(logits_fn(decoders[k](candidates)), 1) == k)[:4]
          for k in range(3)]
  z = jnp.concatenate([candidates[r] for r in rows])
  y = np.repeat(np.arange(3), [len(r) for r in rows])
  order = np.random.default_rng(0).permutation(len(y))
  z, y = z[order], y[order]
  box = (-jnp.ones(LATENT), jnp.ones(LATENT))
  spec = attacks.AttackSpec(eps=0.3, steps=10, step_size=0.005, optimizer="adam", init="paper",
                            restarts=2)  # The paper's attack, fewer steps.
  z_adv, x_adv, success = learned.attack_with_class_decoders(
      decoders, [box] * 3, logits_fn, z, y, key=jax.random.key(2), spec=spec, batch_size=5)
  n = len(y)
  assert n == 12 and z_adv.shape == (n, LATENT) and success.shape == (n, 2)  # Batch first.
  start = np.clip(np.asarray(z), -1, 1)  # Codes are clipped into the box first.
  assert np.all(np.abs(z_adv - start) <= 0.3 + 1e-6) and np.all(np.abs(z_adv) <= 1)
  for i in range(n):  # Row i is decoded by the decoder of its class, in the input order.
    images = [np.asarray(d(z_adv[i:i + 1]))[0] for d in decoders]
    np.testing.assert_allclose(x_adv[i], images[y[i]], atol=1e-6)
    assert all(np.abs(x_adv[i] - images[k]).max() > 1e-2 for k in range(3) if k != y[i])
  predicted = np.argmax(np.asarray(logits_fn(jnp.asarray(x_adv))), axis=1)
  np.testing.assert_array_equal(success.any(axis=1), predicted != y)
  assert 3 <= success.any(axis=1).sum() <= 9, success  # Some, not all, fooled at eps 0.3.


def test_learned_manifold_decodes_through_the_decoder_of_its_projection():
  """decode(codes) is the class-agnostic decoder, the one the projection uses (claim 1's tangent
  reference decodes around the projection's codes), never a class's decoder."""
  nets = vaegan.make_vaegan((28, 28, 1), latent_dim=LATENT, channels=4)
  decoder = lambda seed: jax.jit(nets.decoder.init)(jax.random.key(seed), jnp.zeros((1, LATENT)))
  agnostic = vaegans.TrainedVAEGAN(nets, {"decoder": decoder(0)}, None)
  class_0 = vaegans.TrainedVAEGAN(nets, {"decoder": decoder(1)}, None)
  manifold = learned.LearnedManifold(None, vaegans.VAEGANs((class_0,), agnostic), None)
  codes = np.random.default_rng(0).standard_normal((6, LATENT)).astype(np.float32)
  images = manifold.decode(codes, np.arange(6), 4, parallel.data_mesh())
  decode = jax.jit(lambda f, z: f(z))
  np.testing.assert_allclose(images, decode(agnostic.decode_fn, codes), atol=1e-6)
  assert np.abs(images - decode(class_0.decode_fn, codes)).max() > 1e-3


def test_known_manifold_decodes_theta_into_renderings_of_each_rows_prototype():
  ds = small_fonts(num_train=20, num_test=12)
  manifold, mesh, rows = known.KnownManifold(ds), parallel.data_mesh(), np.arange(12)
  theta = ds.x_test.theta[rows]
  np.testing.assert_allclose(manifold.decode(theta, rows, 8, mesh), ds.x_test[rows], atol=3e-5)
  others = manifold.decode(theta, rows[::-1], 8, mesh)  # other rows' prototypes
  assert np.abs(others - ds.x_test[rows]).max() > 0.5
