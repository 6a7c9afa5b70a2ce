"""The in-memory dataset every source returns, and the paper's subsetting and batching."""
from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Train and test splits as numpy arrays.

  x_*: float32 [N, H, W, C] in [0, 1]; y_*: int32 [N] in [0, num_classes).
  """
  name: str
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int

  def __post_init__(self):
    for split in ("train", "test"):
      x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
      validate_images(x, f"{self.name} x_{split}")
      if y.dtype != np.int32 or y.shape != (x.shape[0],):
        raise ValueError(f"{self.name} y_{split} must be int32 of shape ({x.shape[0]},), "
                         f"got {y.dtype} {y.shape}.")
      if y.size and (y.min() < 0 or y.max() >= self.num_classes):
        raise ValueError(f"{self.name} y_{split} has labels outside [0, {self.num_classes}).")

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.x_train.shape[1:])

  def first_n(self, n: int) -> "Dataset":
    """The paper's training subset: the FIRST n training rows (not a random sample)."""
    if not 0 < n <= len(self.x_train):
      raise ValueError(f"training size n={n} must be in [1, {len(self.x_train)}] for {self.name}.")
    return dataclasses.replace(self, x_train=self.x_train[:n], y_train=self.y_train[:n])


def validate_images(x: np.ndarray, what: str) -> None:
  """Raises if x is not float32 NHWC with finite values in [0, 1].

  A lazily computed array (not an np.ndarray, e.g. fonts.RenderedImages) has its values checked
  on its first 1024 rows.
  """
  if x.dtype != np.float32 or x.ndim != 4:
    raise ValueError(f"{what} must be float32 [N, H, W, C], got {x.dtype} {x.shape}.")
  if not isinstance(x, np.ndarray):
    x = np.asarray(x[:1024])
  if x.size and not (np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0):
    raise ValueError(f"{what} must be finite and in [0, 1].")


def images_to_float(images: np.ndarray) -> np.ndarray:
  """uint8 [N, H, W] or [N, H, W, C] -> float32 NHWC in [0, 1]."""
  x = images.astype(np.float32) / 255.0
  return x[..., None] if x.ndim == 3 else x


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
  """The shuffled order of one epoch, a pure function of (seed, epoch). int64 [num_examples]."""
  rng = np.random.default_rng([seed, epoch])
  return rng.permutation(num_examples)


def num_batches(num_examples: int, batch_size: int) -> int:
  """Batches per epoch; the last batch holds the remainder (no data is dropped)."""
  return -(-num_examples // batch_size)


def epoch_batches(x, y: np.ndarray, batch_size: int, seed: int, epoch: int, start: int = 0,
                  pad_to: int | None = None, aux: np.ndarray | None = None) -> Iterator[tuple]:
  """Yields (x, y, weight) or, with `aux`, (x, y, weight, aux) for the shuffled batches of one
  epoch, from batch index `start` on.

  Every example is used exactly once per epoch. Every batch has `pad_to` (default batch_size)
  rows, so one compiled step serves the epoch and the rows divide over the devices: the last
  batch and the rounding up to `pad_to` are filled with weight-0 rows that the loss and the
  BatchNorm statistics ignore. weight: float32 [pad_to], 1 for real rows, 0 for padding.
  aux: optional per-example array [N, ...] batched alongside (e.g. latent codes).
  """
  pad_to = pad_to or batch_size
  if pad_to < batch_size:
    raise ValueError(f"pad_to={pad_to} must be >= batch_size={batch_size}.")
  order = epoch_permutation(len(x), seed, epoch)
  for b in range(start, num_batches(len(x), batch_size)):
    idx = order[b * batch_size:(b + 1) * batch_size]
    weight = np.zeros(pad_to, np.float32)
    weight[:len(idx)] = 1.0
    idx = pad_indices(idx, pad_to)
    yield (x[idx], y[idx], weight) + (() if aux is None else (aux[idx],))


def pad_indices(idx: np.ndarray, size: int) -> np.ndarray:
  """idx padded with index idx[0] (or 0) to `size` entries; the padding rows get weight 0."""
  return np.pad(idx, (0, size - len(idx)), constant_values=idx[0] if len(idx) else 0)
