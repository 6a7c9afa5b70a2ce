"""CelebA, binary Male attribute, aligned images resized to width 54 and cropped to 56x48x3.

The paper (docs/protocol.md#datasets) splits the 202,599 images 90/10 in file order. tfds does not keep file order, so
its official `train+validation` (182,637) is the training set and `test` (19,962) the test set.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from dmr.data import tfds_source
from dmr.data.dataset import Dataset

FIX = ("Prepare it once with `python -c \"import tensorflow_datasets as tfds; "
       "tfds.builder('celeb_a').download_and_prepare()\"` (needs tensorflow and the manual "
       "download described in the tfds catalog), then set config.data.dir to its data_dir.")
WIDTH = 54
CROP = (slice(5, -5), slice(3, -3))


def resize_and_crop(image: np.ndarray) -> np.ndarray:
  """uint8 [218, 178, 3] -> uint8 [56, 48, 3]: width 54 keeping the aspect ratio, then the crop."""
  height = round(image.shape[0] * WIDTH / image.shape[1])
  resized = np.asarray(Image.fromarray(image).resize((WIDTH, height), Image.BILINEAR))
  return resized[CROP]


def _male(example: dict) -> int:
  return int(bool(example["attributes"]["Male"]))


def load(data_dir: str | None = None) -> Dataset:
  return tfds_source.load_classification(
      "celeb_a", "train+validation", "test", 2, name="celeb_a", missing_fix=FIX,
      image_fn=lambda ex: resize_and_crop(ex["image"]), label_fn=_male, data_dir=data_dir)
