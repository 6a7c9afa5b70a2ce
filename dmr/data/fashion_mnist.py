"""Fashion-MNIST: 60,000 + 10,000 grey 28x28 images of 10 clothing classes.

Read from local IDX files (Debian's `dataset-fashion-mnist` puts them in
/usr/share/datasets/fashion-mnist); the directory comes from the argument, else the
environment variable DMR_FASHION_MNIST_DIR, else that default. Without local files, tfds.
"""
from __future__ import annotations

import os

import numpy as np

from dmr.data import idx
from dmr.data.dataset import Dataset, images_to_float

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
ENV_VAR = "DMR_FASHION_MNIST_DIR"
_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
          "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
_SIZES = {"train": 60000, "test": 10000}
FIX = (f"Install Debian's package with `sudo apt-get install dataset-fashion-mnist`, or put the "
       f"four IDX files (optionally .gz) from https://github.com/zalandoresearch/fashion-mnist in a "
       f"directory and point {ENV_VAR} (or config.data.dir) at it.")


def data_dir(directory: str | None = None) -> str:
  return directory or os.environ.get(ENV_VAR) or DEFAULT_DIR


def _find(directory: str, stem: str) -> str:
  """The path of `stem` or `stem.gz` in directory (the plain name if neither exists)."""
  for name in (stem, stem + ".gz"):
    if os.path.exists(os.path.join(directory, name)):
      return os.path.join(directory, name)
  return os.path.join(directory, stem)


def has_local_files(directory: str | None = None) -> bool:
  d = data_dir(directory)
  return all(os.path.exists(_find(d, stem)) for stem in _FILES.values())


def load_idx(directory: str | None = None) -> Dataset:
  """Fashion-MNIST from the IDX files in `directory` (see module docstring)."""
  d = data_dir(directory)
  arrays = {key: idx.read_idx(_find(d, stem), FIX) for key, stem in _FILES.items()}
  for split, size in _SIZES.items():
    x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
    if x.shape != (size, 28, 28) or y.shape != (size,):
      raise idx.DataFileError(f"Fashion-MNIST {split} files in {d} have shapes {x.shape}, "
                              f"{y.shape}; expected ({size}, 28, 28), ({size},). {FIX}")
  return Dataset(
      name="fashion_mnist",
      x_train=images_to_float(arrays["x_train"]), y_train=arrays["y_train"].astype(np.int32),
      x_test=images_to_float(arrays["x_test"]), y_test=arrays["y_test"].astype(np.int32),
      num_classes=10)


def load(directory: str | None = None) -> Dataset:
  """Fashion-MNIST from local IDX files if present, else through tfds."""
  if has_local_files(directory):
    return load_idx(directory)
  if (directory or os.environ.get(ENV_VAR)) and not os.path.isdir(data_dir(directory)):
    raise idx.DataFileError(
        f"The Fashion-MNIST directory {data_dir(directory)} does not exist. {FIX}")
  from dmr.data import tfds_source  # Only needed without local files.
  return tfds_source.load_classification("fashion_mnist", "train", "test", 10, name="fashion_mnist",
                                         missing_fix=FIX)
