"""Per-image outcome files: merged by key, replaced atomically."""
import os
from unittest import mock

import numpy as np
import pytest

from dmr import outcomes


def test_save_merges_keys_and_load_returns_them(tmp_path):
  d = str(tmp_path / "models" / "normal" / "n10" / "seed0")
  assert outcomes.load(d) == {}
  outcomes.save(d, test_correct=np.array([True, False]), off_success=np.zeros((2, 3), bool))
  outcomes.save(d, test_correct=np.array([True, True, True]))
  got = outcomes.load(d)
  assert sorted(got) == ["off_success", "test_correct"]
  np.testing.assert_array_equal(got["test_correct"], [True, True, True])
  assert got["off_success"].shape == (2, 3) and got["off_success"].dtype == bool
  assert os.listdir(d) == ["outcomes.npz"]


def test_a_failed_save_keeps_the_previous_outcomes(tmp_path):
  outcomes.save(str(tmp_path), test_correct=np.array([True, False]))
  before = (tmp_path / outcomes.FILENAME).read_bytes()

  def full_disk(fd):
    raise OSError(28, "No space left on device")

  with mock.patch("os.fsync", full_disk), pytest.raises(OSError):
    outcomes.save(str(tmp_path), off_correct=np.array([True, True]))
  assert (tmp_path / outcomes.FILENAME).read_bytes() == before
  assert os.listdir(tmp_path) == [outcomes.FILENAME]  # No temporary file left behind.
