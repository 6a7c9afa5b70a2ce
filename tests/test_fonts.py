"""dmr.data.fonts (FONTS prototypes, lazily rendered splits) and the known manifold."""
import os
import shutil

import jax
import numpy as np
import pytest

from dmr import attacks, geometry, parallel
from dmr.data import dataset, fonts
from dmr.manifolds import known

BUNDLED = tuple(fonts.bundled_font_paths())  # matplotlib's fonts: the same on every machine


def small_fonts(seed=0, num_train=200, num_test=100, **kwargs):
  kwargs.setdefault("max_fonts", 4)
  return fonts.load_fonts(num_train, num_test, seed=seed, font_paths=BUNDLED, **kwargs)


def font_named(name):
  return next(p for p in BUNDLED if os.path.basename(p) == name)


def test_bundled_fonts_give_legible_distinct_centred_prototypes():
  found = fonts.find_fonts(font_paths=BUNDLED)
  names = [os.path.basename(p) for p in found.paths]
  assert len(names) >= 15 and "DejaVuSans.ttf" in names and "cmr10.ttf" in names
  # Without the letters, with a placeholder glyph for all of them, or too large: rejected.
  assert not {"STIXSizOneSymReg.ttf", "LastResortHE-Regular.ttf", "cmex10.ttf"} & set(names)
  p = found.prototypes
  assert p.shape == (len(names), 10, 28, 28) and p.dtype == np.float32
  assert p.min() == 0.0 and p.max() == 1.0 and p.sum(axis=(2, 3)).min() > fonts.MIN_INK
  rows, cols = np.arange(28)[:, None], np.arange(28)[None]
  ink = p.sum(axis=(2, 3))
  np.testing.assert_allclose((p * rows).sum(axis=(2, 3)) / ink, 13.5, atol=3.0)
  np.testing.assert_allclose((p * cols).sum(axis=(2, 3)) / ink, 13.5, atol=3.0)
  distances = fonts.rms_distances(p.reshape(len(p), -1), p.reshape(len(p), -1))
  assert distances[np.triu_indices(len(p), 1)].min() >= fonts.DUPLICATE_TOLERANCE


def test_font_order_is_deterministic_prefix_stable_and_deduplicated(tmp_path):
  full = fonts.find_fonts(font_paths=BUNDLED)
  shuffled = tuple(np.random.default_rng(0).permutation(BUNDLED))
  again = fonts.find_fonts(font_paths=shuffled)
  assert again.paths == full.paths and np.array_equal(again.prototypes, full.prototypes)
  first = fonts.find_fonts(max_fonts=3, font_paths=BUNDLED)
  assert first.paths == full.paths[:3] and np.array_equal(first.prototypes, full.prototypes[:3])
  copy = tmp_path / "DejaVuSans.ttf"
  shutil.copy(font_named("DejaVuSans.ttf"), copy)
  with_copy = fonts.find_fonts(font_paths=BUNDLED + (str(copy),))
  assert len(with_copy.paths) == len(full.paths)


def test_machine_fonts_are_discovered():
  candidates = fonts.candidate_font_paths()
  assert set(map(os.path.realpath, BUNDLED)) <= set(candidates)
  assert len(fonts.find_fonts(max_fonts=2).paths) == 2


def test_letter_map_and_legibility_filters():
  assert fonts.maps_letters(font_named("DejaVuSans.ttf"))
  assert not fonts.maps_letters(font_named("LastResortHE-Regular.ttf"))  # "lastresortlatin"
  assert not fonts.maps_letters(font_named("STIXSizOneSymReg.ttf"))      # no A-J at all
  glyphs = fonts.find_fonts(max_fonts=1, font_paths=BUNDLED).prototypes[0]
  assert fonts.is_legible(glyphs)
  assert not fonts.is_legible(np.repeat(glyphs[:1], 10, axis=0))  # one placeholder shape
  assert not fonts.is_legible(1.0 - glyphs)                        # inverted
  assert not fonts.is_legible(glyphs * 0.001)                      # no ink
  with pytest.raises(RuntimeError, match="debian-fonts.txt"):
    fonts.find_fonts(font_paths=(font_named("LastResortHE-Regular.ttf"),))


def test_splits_have_the_documented_layout_range_and_labels():
  data = small_fonts()
  assert isinstance(data, dataset.Dataset) and data.num_classes == 10
  for x, y, n in ((data.x_train, data.y_train, 200), (data.x_test, data.y_test, 100)):
    assert isinstance(x, fonts.RenderedImages)
    assert x.shape == (n, 28, 28, 1) and len(x) == n and x.dtype == np.float32 and x.ndim == 4
    assert y.dtype == np.int32 and np.array_equal(y, np.arange(n) % 10)
    assert np.array_equal(x.font, (np.arange(n) // 10) % 4)
    assert np.array_equal(np.bincount(y), np.full(10, n // 10))
    assert geometry.FONTS_HARD.contains(x.theta).all()
    images = np.asarray(x)
    assert images.shape == (n, 28, 28, 1) and images.dtype == np.float32
    assert images.min() == 0.0 and 0.9 < images.max() <= 1.0
    assert (images.sum(axis=(1, 2, 3)) > 5.0).all()  # every letter stays (mostly) on the canvas
  # The theta really span the hard box: e.g. rotations beyond the easy +-pi/6.
  assert np.abs(data.x_train.theta[:, 5]).max() > 1.3
  easy = small_fonts(difficulty="easy")
  assert geometry.FONTS_EASY.contains(easy.x_train.theta).all()
  with pytest.raises(ValueError, match="difficulty"):
    small_fonts(difficulty="extreme")


def test_same_seed_same_bytes_other_seed_other_images():
  a, b, c = small_fonts(seed=3), small_fonts(seed=3), small_fonts(seed=4)
  assert np.asarray(a.x_train).tobytes() == np.asarray(b.x_train).tobytes()
  assert np.asarray(a.x_test).tobytes() == np.asarray(b.x_test).tobytes()
  assert np.abs(np.asarray(a.x_train) - np.asarray(c.x_train)).mean() > 0.05
  assert fonts.shared_rows(a.x_train.theta, c.x_train.theta) == 0


def test_test_theta_are_disjoint_from_training_theta():
  data = small_fonts(num_train=5000, num_test=1000)
  assert fonts.shared_rows(data.x_train.theta, data.x_test.theta) == 0
  assert fonts.shared_rows(data.x_train.theta, data.x_train.theta[::7]) == len(range(0, 5000, 7))
  # Same fonts and labels row by row, different transformations.
  assert np.array_equal(data.x_train.font[:1000], data.x_test.font)


def test_lazy_indexing_equals_materialized_rendering():
  x = small_fonts().x_train
  full = np.asarray(x)
  index = np.array([5, 3, 199, 0, 5, 42])
  assert np.array_equal(x[index], full[index])
  assert np.array_equal(x[7], full[7]) and x[7].shape == (28, 28, 1)
  assert np.array_equal(x[np.array([[1, 2], [3, 4]])], full[[[1, 2], [3, 4]]])
  view = x[10:60:2]
  assert isinstance(view, fonts.RenderedImages) and view.shape == (25, 28, 28, 1)
  assert np.array_equal(np.asarray(view), full[10:60:2])
  with pytest.raises(TypeError, match="integer"):
    x[np.array([0.5])]
  # Each row is the spatial transformer applied to its prototype.
  expected = jax.jit(geometry.transform)(x.prototypes_at(index), x.theta[index])
  np.testing.assert_allclose(full[index], expected, atol=3e-5)


def test_first_n_stays_lazy_and_smaller_splits_are_prefixes():
  data = small_fonts()
  subset = data.first_n(50)
  assert isinstance(subset.x_train, fonts.RenderedImages) and len(subset.x_train) == 50
  assert np.array_equal(np.asarray(subset.x_train), np.asarray(data.x_train)[:50])
  smaller = small_fonts(num_train=60, num_test=30)
  assert np.array_equal(smaller.x_train.theta, data.x_train.theta[:60])
  assert np.array_equal(smaller.x_test.theta, data.x_test.theta[:30])


def test_epoch_batches_render_the_shuffled_rows():
  data = small_fonts()
  order = dataset.epoch_permutation(200, seed=1, epoch=0)
  x, y, weight = next(dataset.epoch_batches(data.x_train, data.y_train, 32, seed=1, epoch=0))
  assert x.shape == (32, 28, 28, 1) and weight.sum() == 32
  assert np.array_equal(x, np.asarray(data.x_train)[order[:32]])
  assert np.array_equal(y, data.y_train[order[:32]])


def test_decode_fn_renders_the_data():
  x = small_fonts().x_test
  index = np.arange(20)
  decode = jax.jit(geometry.transform)
  np.testing.assert_allclose(decode(x.prototypes_at(index), x.theta[index]), x[index], atol=3e-5)


def test_projection_recovers_theta_and_separates_adversarial_noise():
  x = small_fonts().x_test
  index = np.arange(20)
  clean = x[index]
  noise = np.sign(np.random.default_rng(0).standard_normal(clean.shape))
  adversarial = np.clip(clean + 0.3 * noise, 0.0, 1.0).astype(np.float32)
  images = np.concatenate([clean, adversarial])
  prototypes = np.concatenate([x.prototypes_at(index)] * 2)
  result = known.project_to_true_manifold(images, prototypes, jax.random.key(0), x.theta_range)
  distance, theta = np.asarray(result.distance), np.asarray(result.theta)
  assert geometry.FONTS_HARD.contains(theta).all()
  np.testing.assert_allclose(
      distance, np.sqrt(((images - np.asarray(result.images)) ** 2).sum(axis=(1, 2, 3))),
      rtol=1e-5)
  clean_distance, adversarial_distance = distance[:20], distance[20:]
  assert np.median(clean_distance) < 0.05 and clean_distance.max() < 0.3
  # Letters with symmetries (H, I, ...) have several equally good theta; most are recovered.
  theta_error = np.abs(theta[:20] - x.theta[index]).max(axis=1)
  assert (theta_error < 0.05).mean() >= 0.6
  assert adversarial_distance.min() > 3.0
  assert adversarial_distance.min() > 20 * clean_distance.max()


def test_known_manifold_attacks_renderings_of_theta_and_measures_them_on_the_manifold():
  ds = small_fonts()
  manifold, mesh, rows = known.KnownManifold(ds), parallel.data_mesh(), np.arange(12)
  w = 0.05 * jax.random.normal(jax.random.key(0), (28 * 28, 10))
  logits_fn = jax.tree_util.Partial(lambda w, x: (x.reshape(x.shape[0], -1) - 0.2) @ w, w)
  spec = attacks.AttackSpec(eps=0.3, steps=5, restarts=2)
  on = manifold.attack(logits_fn, rows, spec, jax.random.key(1), 8, mesh)
  np.testing.assert_array_equal(on.rows, rows)
  np.testing.assert_allclose(on.x_on, ds.x_test[rows], atol=3e-5)  # The data are renderings.
  assert on.success.shape == (12, 2) and on.x_adv.shape == (12, 28, 28, 1)  # Batch first.
  predicted = np.argmax(np.asarray(logits_fn(on.x_adv)), axis=1)
  np.testing.assert_array_equal(on.success.any(axis=1), predicted != ds.y_test[rows])
  # Adversarial renderings lie on the manifold: as close to it as the test images themselves.
  clean = manifold.distance(on.x_on, rows, jax.random.key(2), 8, mesh)
  adversarial = manifold.distance(on.x_adv, rows, jax.random.key(2), 8, mesh)
  assert clean.shape == adversarial.shape == (12,)
  assert np.median(adversarial) < 0.3 and np.median(clean) < 0.3, (clean, adversarial)
  noise = np.clip(on.x_on + 0.3 * np.sign(np.random.default_rng(0).standard_normal(on.x_on.shape)),
                  0, 1).astype(np.float32)
  assert manifold.distance(noise, rows, jax.random.key(2), 8, mesh).min() > 3.0
