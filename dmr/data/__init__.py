"""Data sources. Each returns a `Dataset` of float32 NHWC images in [0, 1] and int32 labels."""
from __future__ import annotations

import functools
import json

import ml_collections

from dmr.data.dataset import Dataset

# Training-set sizes, for validating training_sizes before any data is read.
TRAIN_SIZES = {"fashion_mnist": 60000, "emnist": 240000, "celeb_a": 182637}
DATASETS = ("fashion_mnist", "emnist", "celeb_a", "fonts")


def load(name: str, directory: str | None = None) -> Dataset:
  """The dataset `name` (one of DATASETS except fonts, which `dmr.data.fonts` builds)."""
  if name == "fashion_mnist":
    from dmr.data import fashion_mnist
    return fashion_mnist.load(directory)
  if name == "emnist":
    from dmr.data import emnist
    return emnist.load(directory)
  if name == "celeb_a":
    from dmr.data import celeb_a
    return celeb_a.load(directory)
  raise ValueError(f"dataset={name!r}; allowed: {DATASETS}.")


def load_configured(name: str, data_config: ml_collections.ConfigDict) -> Dataset:
  """The dataset `name` as a config's `data` section describes it (cached: the stages of one run
  share it)."""
  return _load_configured(name, data_config.to_json())


@functools.lru_cache(maxsize=1)
def _load_configured(name: str, data_json: str) -> Dataset:
  d = ml_collections.ConfigDict(json.loads(data_json))
  if name == "fonts":
    from dmr.data import fonts
    return fonts.load_fonts(d.num_train, d.num_test, seed=d.seed, difficulty=d.difficulty,
                            max_fonts=d.max_fonts)
  return load(name, d.dir)
