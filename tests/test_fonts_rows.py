"""Stratified FONTS test rows and the font set's identity (dmr.data.fonts)."""
import numpy as np
import pytest

from dmr.data import fonts


@pytest.mark.parametrize("num_rows, num_fonts, num", [(2000, 22, 500), (2000, 1000, 500),
                                                     (200, 10, 40), (160_000, 1000, 1000)])
def test_stratified_rows_cover_every_font_of_the_split_with_balanced_classes(num_rows, num_fonts,
                                                                             num):
  rows = fonts.stratified_rows(num_rows, num_fonts, num, seed=0)
  font, label = fonts.layout(num_rows, num_fonts)
  in_split = min(num_fonts, num_rows // 10)
  assert len(np.unique(rows)) == num and rows.max() < num_rows
  assert np.bincount(label[rows], minlength=10).tolist() == [num // 10] * 10
  per_font = np.bincount(font[rows], minlength=in_split)
  assert len(per_font) == in_split
  assert per_font.min() == num // in_split and per_font.max() <= -(-num // in_split)


def test_stratified_rows_on_the_claims_split_with_the_bundled_fonts():
  """2000 test rows, 22 fonts: 500 attacked rows give every font 22 or 23 rows, where the first
  500 rows give each 20 or 30, fonts 0-5 the 30."""
  rows = fonts.stratified_rows(2000, 22, 500, seed=0)
  font, _ = fonts.layout(2000, 22)
  assert sorted(set(np.bincount(font[rows]))) == [22, 23]
  assert sorted(set(np.bincount(font[:500]))) == [20, 30]


def test_stratified_rows_are_deterministic_per_seed():
  a, b = fonts.stratified_rows(2000, 22, 500, 0), fonts.stratified_rows(2000, 22, 500, 0)
  assert np.array_equal(a, b)
  assert not np.array_equal(a, fonts.stratified_rows(2000, 22, 500, 1))


def test_stratified_rows_say_when_the_split_is_too_small():
  with pytest.raises(ValueError, match="attack fewer test images"):
    fonts.stratified_rows(2000, 22, 1990, 0)
  assert np.array_equal(fonts.stratified_rows(200, 22, 200, 0), np.arange(200))


def test_font_identity_names_the_fonts_not_their_folders(tmp_path):
  bundled = fonts.bundled_font_paths()
  found = fonts.find_fonts(3, bundled)
  links = []
  for path in found.paths:  # the same files under another folder
    links.append(str(tmp_path / path.rsplit("/", 1)[1]))
    (tmp_path / path.rsplit("/", 1)[1]).symlink_to(path)
  moved = fonts.FontSet(tuple(links), found.prototypes)
  identity = fonts.font_identity(found)
  assert identity.count == 3 and len(identity.digest) == 16
  assert fonts.font_identity(moved) == identity
  assert fonts.font_identity(fonts.find_fonts(2, bundled)).digest != identity.digest
