"""Checks that need the model's number of classes, shared by apgd, square and evaluate."""
from __future__ import annotations

import jax
import numpy as np

from dmr.attacks import validation


def num_classes(logits_fn, x) -> int:
  """K of logits_fn(x) [B, K], found by tracing only (no computation)."""
  shape = jax.eval_shape(logits_fn, x).shape
  if len(shape) != 2 or shape[0] != np.shape(x)[0] or shape[1] < 2:
    raise ValueError(f"logits_fn must map a batch of {np.shape(x)[0]} inputs to logits [B, K] "
                     f"with K >= 2 classes, got shape {shape}.")
  return shape[1]


def check_label_range(y, classes: int, what: str = "y") -> None:
  """Every label in [0, classes) (checked when y is concrete)."""
  if not validation.is_concrete(y):
    return
  y = np.asarray(y)
  bad = (y < 0) | (y >= classes)
  if bad.any():
    raise ValueError(f"{what} must hold class labels in [0, {classes}); {int(bad.sum())} do not "
                     f"(e.g. {int(y[bad][0])}). Drop padded rows (label -1) before attacking.")


def check_choice(name: str, value, allowed) -> None:
  if value not in allowed:
    raise ValueError(f"{name}={value!r} is not supported; use one of {list(allowed)}.")


def check_count(name: str, value) -> None:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f"{name}={value!r} must be a Python int >= 1.")
