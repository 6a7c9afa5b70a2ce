"""FONTS rows against glyphs rendered here, independently of dmr's prototypes and layout: row i
shows letter "ABCDEFGHIJ"[i % 10] of font (i // 10) % F, centred on a 28x28 canvas at 21 px,
ink 1 on 0, under the row's transformation theta."""
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from dmr import geometry
from dmr.data import fonts

BUNDLED = tuple(fonts.bundled_font_paths())


def glyph(path: str, letter: str) -> np.ndarray:
  """float32 [28, 28, 1]: the letter's ink box centred on the canvas."""
  font = ImageFont.truetype(path, 21, layout_engine=ImageFont.Layout.BASIC)
  scratch = Image.new("L", (84, 84), 0)
  ImageDraw.Draw(scratch).text((28, 28), letter, fill=255, font=font)
  ink = scratch.crop(scratch.getbbox())
  canvas = Image.new("L", (28, 28), 0)
  canvas.paste(ink, ((28 - ink.width) // 2, (28 - ink.height) // 2))
  return (np.asarray(canvas, np.float32) / 255.0)[..., None]


def test_each_row_shows_its_letter_in_its_font_under_its_theta():
  ds = fonts.load_fonts(60, 30, seed=3, max_fonts=3, font_paths=BUNDLED)
  paths = fonts.find_fonts(max_fonts=3, font_paths=BUNDLED).paths
  for split, labels in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
    rows = np.arange(len(labels))
    expected_font, expected_letter = (rows // 10) % 3, rows % 10
    np.testing.assert_array_equal(labels, expected_letter)
    prototypes = np.stack([glyph(paths[f], "ABCDEFGHIJ"[c])
                           for f, c in zip(expected_font, expected_letter)])
    expected = np.asarray(geometry.transform(prototypes, split.theta))
    np.testing.assert_allclose(split[rows], expected, atol=1e-5)
    # The images differ from every other (font, letter) by far more than that tolerance.
    wrong = np.asarray(geometry.transform(np.roll(prototypes, 1, axis=0), split.theta))
    assert np.abs(split[rows] - wrong).max(axis=(1, 2, 3)).min() > 0.3
