"""Reading datasets through `tfds.data_source` (random access, no TensorFlow needed)."""
from __future__ import annotations

import os
from typing import Callable

import numpy as np

from dmr.data.dataset import Dataset, images_to_float
from dmr.data.idx import DataFileError


def read_split(name: str, split: str, image_fn: Callable[[dict], np.ndarray],
               label_fn: Callable[[dict], int], missing_fix: str,
               data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
  """All examples of a tfds split as (images uint8 [N, ...], labels int32 [N]), in source order."""
  if data_dir and not os.path.isdir(data_dir):
    raise DataFileError(f"The data directory {data_dir} (config.data.dir) does not exist. "
                        f"{missing_fix}")
  import tensorflow_datasets as tfds
  try:
    source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
  except Exception as e:  # tfds raises several types for a dataset that is not prepared.
    raise DataFileError(f"tfds dataset {name!r} split {split!r} is not available ({e}). "
                        f"{missing_fix}") from e
  images = np.stack([image_fn(source[i]) for i in range(len(source))])
  labels = np.asarray([label_fn(source[i]) for i in range(len(source))], np.int32)
  return images, labels


def load_classification(tfds_name: str, train_split: str, test_split: str, num_classes: int,
                        name: str, missing_fix: str,
                        image_fn: Callable[[dict], np.ndarray] = lambda ex: ex["image"],
                        label_fn: Callable[[dict], int] = lambda ex: int(ex["label"]),
                        data_dir: str | None = None) -> Dataset:
  """A Dataset from two tfds splits; images are uint8 HWC or HW, returned float32 NHWC [0, 1]."""
  splits = {}
  for key, split in (("train", train_split), ("test", test_split)):
    x, y = read_split(tfds_name, split, image_fn, label_fn, missing_fix, data_dir)
    splits[f"x_{key}"], splits[f"y_{key}"] = images_to_float(x), y
  return Dataset(name=name, num_classes=num_classes, **splits)
