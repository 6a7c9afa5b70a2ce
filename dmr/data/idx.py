"""Reading IDX files (the MNIST family's format), plain or gzip-compressed, with clear errors."""
from __future__ import annotations

import gzip
import os

import numpy as np

from dmr.errors import UserError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
           0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class DataFileError(UserError, RuntimeError):
  """A data file is missing, truncated or corrupt; the message says how to get it."""


def read_idx(path: str, fix: str) -> np.ndarray:
  """The array stored in the IDX file at `path` (gzip if it ends in .gz).

  `fix` is appended to every error message: how the user gets an intact file.
  """
  if not os.path.exists(path):
    raise DataFileError(f"{path} does not exist. {fix}")
  try:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
      raw = f.read()
  except (OSError, EOFError) as e:
    raise DataFileError(f"{path} cannot be read ({e}). {fix}") from e
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
    raise DataFileError(f"{path} is not an IDX file (bad magic number). {fix}")
  ndim, dtype = raw[3], np.dtype(_DTYPES[raw[2]])
  header = 4 + 4 * ndim
  shape = tuple(int(d) for d in np.frombuffer(raw[4:header], ">u4"))
  expected = header + int(np.prod(shape)) * dtype.itemsize
  if len(raw) != expected:
    raise DataFileError(f"{path} is truncated or corrupt: {len(raw)} bytes, expected {expected} "
                        f"for shape {shape}. {fix}")
  return np.frombuffer(raw, dtype, offset=header).reshape(shape)
