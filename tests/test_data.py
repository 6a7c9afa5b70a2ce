"""Data: IDX parsing and its errors, real Fashion-MNIST, subsets, batching, tfds sources."""
import gzip
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from dmr.data import celeb_a, emnist, fashion_mnist, idx
from dmr.data.dataset import Dataset, epoch_batches, epoch_permutation


def write_idx(path, array, compress=False):
  header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
  payload = header + array.astype(np.uint8).tobytes()
  with (gzip.open if compress else open)(path, "wb") as f:
    f.write(payload)


def write_fake_fashion(directory, train=60000, test=10000, compress=True):
  rng = np.random.default_rng(0)
  suffix = ".gz" if compress else ""
  for stem, n in (("train", train), ("t10k", test)):
    write_idx(os.path.join(directory, f"{stem}-images-idx3-ubyte{suffix}"),
              rng.integers(0, 256, (n, 28, 28)), compress)
    write_idx(os.path.join(directory, f"{stem}-labels-idx1-ubyte{suffix}"),
              rng.integers(0, 10, (n,)), compress)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, compress):
  array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
  path = str(tmp_path / ("a.gz" if compress else "a"))
  write_idx(path, array, compress)
  np.testing.assert_array_equal(idx.read_idx(path, "fix"), array)


def test_read_idx_errors_name_the_file_and_the_fix(tmp_path):
  with pytest.raises(idx.DataFileError, match=r"missing-file does not exist. get it here"):
    idx.read_idx(str(tmp_path / "missing-file"), "get it here")
  path = str(tmp_path / "short")
  write_idx(path, np.zeros((10, 28, 28)))
  with open(path, "r+b") as f:
    f.truncate(100)
  with pytest.raises(idx.DataFileError, match=r"short is truncated or corrupt.*get it here"):
    idx.read_idx(path, "get it here")
  bad = tmp_path / "bad"
  bad.write_bytes(b"\x12\x34\x56\x78rest")
  with pytest.raises(idx.DataFileError, match="bad magic number"):
    idx.read_idx(str(bad), "fix")
  broken_gz = tmp_path / "broken.gz"
  broken_gz.write_bytes(b"not gzip at all")
  with pytest.raises(idx.DataFileError, match="broken.gz cannot be read"):
    idx.read_idx(str(broken_gz), "fix")


def test_fashion_mnist_directory_from_env_var(tmp_path, monkeypatch):
  write_fake_fashion(str(tmp_path), train=60000, test=10000, compress=False)
  monkeypatch.setenv(fashion_mnist.ENV_VAR, str(tmp_path))
  ds = fashion_mnist.load()
  assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)


def test_fashion_mnist_wrong_shape_says_what_to_do(tmp_path):
  write_fake_fashion(str(tmp_path), train=100, test=10)
  with pytest.raises(idx.DataFileError, match="expected \\(60000, 28, 28\\).*apt-get install"):
    fashion_mnist.load(str(tmp_path))


@pytest.mark.skipif(not fashion_mnist.has_local_files(), reason="needs dataset-fashion-mnist")
def test_real_fashion_mnist():
  ds = fashion_mnist.load()
  assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
  assert ds.x_train.dtype == np.float32 and 0.0 == ds.x_train.min() and ds.x_train.max() == 1.0
  assert np.bincount(ds.y_train).tolist() == [6000] * 10
  assert np.bincount(ds.y_test).tolist() == [1000] * 10
  # The first training labels of Fashion-MNIST: ankle boot, t-shirt, t-shirt, dress, t-shirt.
  assert ds.y_train[:5].tolist() == [9, 0, 0, 3, 0]


def tiny_dataset(n=10):
  x = np.linspace(0, 1, n * 4, dtype=np.float32).reshape(n, 2, 2, 1)
  return Dataset("tiny", x, np.arange(n, dtype=np.int32) % 3, x[:2], np.zeros(2, np.int32), 3)


def test_first_n_takes_the_first_rows_and_validates():
  ds = tiny_dataset()
  sub = ds.first_n(4)
  np.testing.assert_array_equal(sub.x_train, ds.x_train[:4])
  with pytest.raises(ValueError, match=r"n=11 must be in \[1, 10\]"):
    ds.first_n(11)


def test_dataset_rejects_bad_images():
  x = np.full((2, 2, 2, 1), 2.0, np.float32)
  with pytest.raises(ValueError, match=r"finite and in \[0, 1\]"):
    Dataset("bad", x, np.zeros(2, np.int32), x, np.zeros(2, np.int32), 2)
  with pytest.raises(ValueError, match="float32"):
    Dataset("bad", x.astype(np.float64), np.zeros(2, np.int32), x, np.zeros(2, np.int32), 2)


def test_epoch_batches_use_every_example_once_with_padding():
  ds = tiny_dataset(10)
  batches = list(epoch_batches(ds.x_train, ds.y_train, batch_size=4, seed=1, epoch=0, pad_to=8))
  assert len(batches) == 3
  assert all(xb.shape == (8, 2, 2, 1) for xb, _, _ in batches)
  weights = np.concatenate([w for _, _, w in batches])
  assert weights.tolist() == [1] * 4 + [0] * 4 + [1] * 4 + [0] * 4 + [1] * 2 + [0] * 6
  seen = np.concatenate([xb[w > 0, 0, 0, 0] for xb, _, w in batches])
  np.testing.assert_array_equal(np.sort(seen), ds.x_train[:, 0, 0, 0])
  resumed = list(epoch_batches(ds.x_train, ds.y_train, 4, seed=1, epoch=0, start=1, pad_to=8))
  np.testing.assert_array_equal(resumed[0][0], batches[1][0])


def test_shuffling_depends_on_seed_and_epoch_only():
  a = epoch_permutation(100, seed=3, epoch=2)
  np.testing.assert_array_equal(a, epoch_permutation(100, seed=3, epoch=2))
  assert not np.array_equal(a, epoch_permutation(100, seed=3, epoch=1))
  assert not np.array_equal(a, epoch_permutation(100, seed=4, epoch=2))


def test_emnist_through_tfds_is_transposed_upright():
  image = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28, 1)
  source = lambda builder, split, **kwargs: [{"image": image, "label": i % 10} for i in range(12)]
  with tfds.testing.mock_data(as_data_source_fn=source):
    ds = emnist.load()
  assert ds.x_train.shape == (12, 28, 28, 1) and ds.num_classes == 10
  np.testing.assert_allclose(ds.x_train[0, :, :, 0], image[:, :, 0].T / 255.0)
  assert ds.y_train.tolist() == [i % 10 for i in range(12)]


def test_celeb_a_through_tfds_is_cropped_to_56x48_with_male_labels():
  with tfds.testing.mock_data(num_examples=6):
    ds = celeb_a.load()
  assert ds.x_train.shape == (6, 56, 48, 3) and ds.x_test.shape == (6, 56, 48, 3)
  assert ds.num_classes == 2 and set(ds.y_train.tolist()) <= {0, 1}
  assert celeb_a.resize_and_crop(np.zeros((218, 178, 3), np.uint8)).shape == (56, 48, 3)


def test_missing_tfds_dataset_says_how_to_prepare_it(tmp_path):
  with pytest.raises(idx.DataFileError, match="emnist/digits.*download_and_prepare"):
    emnist.load(str(tmp_path))
