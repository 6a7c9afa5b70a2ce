"""EMNIST digits (240,000 + 40,000 grey 28x28 images, 10 classes) through tfds.

tfds stores EMNIST images transposed (as the original files are); they are transposed back.
"""
from __future__ import annotations

import numpy as np

from dmr.data import tfds_source
from dmr.data.dataset import Dataset

FIX = ("Prepare it once on a machine with internet: `python -c \"import tensorflow_datasets as "
       "tfds; tfds.builder('emnist/digits').download_and_prepare()\"` (needs tensorflow), then copy "
       "~/tensorflow_datasets or set config.data.dir to it.")


def _upright(example: dict) -> np.ndarray:
  return np.swapaxes(example["image"], 0, 1)


def load(data_dir: str | None = None) -> Dataset:
  return tfds_source.load_classification("emnist/digits", "train", "test", 10, name="emnist",
                                         missing_fix=FIX, image_fn=_upright, data_dir=data_dir)
