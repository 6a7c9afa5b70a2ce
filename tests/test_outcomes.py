"""Per-image outcome files: merged by key, replaced atomically."""
import os

import numpy as np

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
