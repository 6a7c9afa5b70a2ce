"""FONTS: the letters A-J of many fonts under random affine transformations (docs/protocol.md#fonts).

The data manifold is known exactly: image = transform(prototype[font, class], theta).

Layout: row i of either split shows class i % 10 in font (i // 10) % F, so every block of 10 rows
holds the ten letters of one font and the first N rows are class-balanced whenever 10 divides N.
Train and test share the fonts and the layout and differ in theta, drawn uniformly from the
difficulty's box by two independent numpy streams, [seed, 0] for train and [seed, 1] for test.
Row i's theta does not depend on the split size, so a smaller split is a prefix of a larger one.

Images are rendered lazily (`RenderedImages`): the paper's 960,000 + 160,000 images would take
3.5 GB as float32 but are rendered on the fly at ~10^5 images/s.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import os
import shutil
import subprocess
from typing import Iterable, Iterator

import jax
import matplotlib
import matplotlib.font_manager
import numpy as np
from fontTools import ttLib
from PIL import Image, ImageDraw, ImageFont

from dmr import geometry
from dmr.data.dataset import Dataset
from dmr.data.idx import DataFileError

LETTERS = "ABCDEFGHIJ"
IMAGE_SIZE = 28
FONT_SIZE = 21                      # px, as the paper's code (28 - 28 / 4)
FONT_EXTENSIONS = (".ttf", ".otf")  # collections (.ttc) and Type 1 fonts are not read
MIN_INK = 8.0                       # minimal ink (in fully inked pixels) of a legible glyph
MAX_INK_FRACTION = 0.35             # maximal mean ink of a font's glyphs (inverted fonts exceed it)
MIN_LETTER_DIFFERENCE = 0.003       # minimal mean |difference| between two letters of a font
DUPLICATE_TOLERANCE = 0.03          # RMS difference of all prototypes under which fonts are equal
DEDUPLICATION_BLOCK = 256           # fonts compared at once when removing duplicates
TRAIN_STREAM, TEST_STREAM = 0, 1
RENDER_CHUNK = 4096                 # images per jitted rendering call


def bundled_font_paths() -> list[str]:
  """The font files shipped with matplotlib (present on every machine; ~23 usable fonts)."""
  folder = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
  return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                if name.lower().endswith(FONT_EXTENSIONS))


def candidate_font_paths() -> list[str]:
  """Font files of matplotlib and of the system (fc-list if present, else matplotlib's search)."""
  paths = bundled_font_paths()
  if shutil.which("fc-list"):
    listing = subprocess.run(["fc-list", "--format", "%{file}\n"], capture_output=True, text=True,
                             check=False).stdout
    paths += listing.splitlines()
  else:
    paths += matplotlib.font_manager.findSystemFonts()
  return sorted({os.path.realpath(p) for p in paths if p.lower().endswith(FONT_EXTENSIONS)})


def load_font(path: str) -> ImageFont.FreeTypeFont | None:
  """The font at FONT_SIZE with the basic (machine-independent) layout, None if unreadable."""
  try:
    return ImageFont.truetype(path, FONT_SIZE, layout_engine=ImageFont.Layout.BASIC)
  except OSError:
    return None


def font_sort_key(path: str, font: ImageFont.FreeTypeFont) -> tuple[str, ...]:
  """The deterministic font order: file name, family and style, then the path for ties."""
  family, style = font.getname()
  return (os.path.basename(path).lower(), family or "", style or "", path)


def maps_letters(path: str) -> bool:
  """Whether the font's Unicode map sends each of LETTERS to a glyph named for that letter.

  The names catch symbol and dingbat fonts that put other shapes on the Latin code points
  ("Alpha" or "a10" for "A"). Accepted names: "A", "A.suffix", "uni0041", "u0041".
  """
  try:
    with ttLib.TTFont(path, lazy=True) as font:
      cmap = font.getBestCmap() or {}
  except Exception:  # fontTools raises many types on damaged or unusual files
    return False
  return all(cmap.get(ord(letter), "").split(".")[0]
             in (letter, f"uni{ord(letter):04X}", f"u{ord(letter):04X}") for letter in LETTERS)


def render_glyph(font: ImageFont.FreeTypeFont, letter: str) -> np.ndarray | None:
  """The letter with its ink box centred on the canvas: float32 [28, 28] in [0, 1], ink 1.

  None if the glyph has no ink or does not fit on the canvas.
  """
  scratch = Image.new("L", (3 * IMAGE_SIZE, 3 * IMAGE_SIZE), 0)
  ImageDraw.Draw(scratch).text((IMAGE_SIZE, IMAGE_SIZE), letter, fill=255, font=font)
  box = scratch.getbbox()
  if box is None:
    return None
  glyph = scratch.crop(box)
  if glyph.width > IMAGE_SIZE or glyph.height > IMAGE_SIZE:
    return None
  canvas = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), 0)
  canvas.paste(glyph, ((IMAGE_SIZE - glyph.width) // 2, (IMAGE_SIZE - glyph.height) // 2))
  return np.asarray(canvas, np.float32) / 255.0


def render_prototypes(font: ImageFont.FreeTypeFont) -> np.ndarray | None:
  """The ten letters of one font, float32 [10, 28, 28]; None unless legible (`is_legible`)."""
  glyphs = [render_glyph(font, letter) for letter in LETTERS]
  if any(g is None for g in glyphs):
    return None
  glyphs = np.stack(glyphs)
  return glyphs if is_legible(glyphs) else None


def is_legible(glyphs: np.ndarray) -> bool:
  """Every glyph [10, H, W] has ink, the font is not inverted (light letters on dark boxes) and
  no two letters look alike (placeholder boxes)."""
  if glyphs.sum(axis=(1, 2)).min() < MIN_INK or glyphs.mean() > MAX_INK_FRACTION:
    return False
  flat = glyphs.reshape(len(glyphs), -1)
  difference = np.abs(flat[:, None] - flat[None]).mean(-1)
  return difference[np.triu_indices(len(glyphs), 1)].min() >= MIN_LETTER_DIFFERENCE


def rms_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Root-mean-square differences [n, m] between the rows of a [n, D] and b [m, D]."""
  a, b = a.astype(np.float64), b.astype(np.float64)
  squared = (a**2).sum(1)[:, None] + (b**2).sum(1)[None] - 2.0 * a @ b.T
  return np.sqrt(np.maximum(squared, 0.0) / a.shape[1])


def distinct_rows(rows: np.ndarray, previous: np.ndarray) -> list[int]:
  """Indices of rows [n, D], in order, that are not duplicates (RMS difference <
  DUPLICATE_TOLERANCE) of any previous [m, D] row nor of an earlier kept row."""
  new_vs_previous = (rms_distances(rows, previous) >= DUPLICATE_TOLERANCE).all(1)
  new_vs_new = rms_distances(rows, rows) >= DUPLICATE_TOLERANCE
  kept = []
  for i in np.flatnonzero(new_vs_previous):
    if new_vs_new[i, kept].all():
      kept.append(int(i))
  return kept


def legible_fonts(fonts: Iterable[tuple[str, ImageFont.FreeTypeFont]]
                  ) -> Iterator[tuple[str, np.ndarray]]:
  """Yields (path, prototypes [10, 28, 28]) of the (path, font) pairs that are usable alone."""
  for path, font in fonts:
    if maps_letters(path) and (glyphs := render_prototypes(font)) is not None:
      yield path, glyphs


@dataclasses.dataclass(frozen=True)
class FontSet:
  """The usable fonts in order. paths: F font files; prototypes: float32 [F, 10, 28, 28]."""
  paths: tuple[str, ...]
  prototypes: np.ndarray


def find_fonts(max_fonts: int | None = None, font_paths: Iterable[str] | None = None) -> FontSet:
  """The first max_fonts usable fonts of font_paths (default: `candidate_font_paths()`).

  Usable: loads, maps A-J to glyphs named for them (`maps_letters`), renders legibly
  (`is_legible`) and is no near-duplicate (RMS difference of all prototypes <
  DUPLICATE_TOLERANCE) of an earlier font in `font_sort_key` order. The result for max_fonts=k
  is a prefix of the result for any larger max_fonts. Cached per process.
  """
  return _find_fonts(max_fonts, None if font_paths is None else tuple(font_paths))


@functools.lru_cache(maxsize=8)
def _find_fonts(max_fonts: int | None, font_paths: tuple[str, ...] | None) -> FontSet:
  """`find_fonts` with hashable arguments, always passed positionally (one cache key each)."""
  candidates = font_paths if font_paths is not None else candidate_font_paths()
  fonts = sorted(((p, f) for p in candidates if (f := load_font(p)) is not None),
                 key=lambda pf: font_sort_key(*pf))
  usable = legible_fonts(fonts)
  paths, flat = [], np.zeros((0, len(LETTERS) * IMAGE_SIZE**2), np.float32)
  while max_fonts is None or len(paths) < max_fonts:
    block = list(itertools.islice(usable, DEDUPLICATION_BLOCK))
    if not block:
      break
    rows = np.stack([glyphs.reshape(-1) for _, glyphs in block])
    keep = distinct_rows(rows, flat)[:None if max_fonts is None else max_fonts - len(paths)]
    paths += [block[i][0] for i in keep]
    flat = np.concatenate([flat, rows[keep]])
  if not paths:
    raise DataFileError("No usable font with the letters A-J was found. Install the Debian "
                        "packages in setup/debian-fonts.txt (apt-get install $(cat "
                        "setup/debian-fonts.txt)) or pass font_paths.")
  prototypes = flat.reshape(len(paths), len(LETTERS), IMAGE_SIZE, IMAGE_SIZE)
  prototypes.flags.writeable = False  # shared by every Dataset built from this cached result
  return FontSet(tuple(paths), prototypes)


@dataclasses.dataclass(frozen=True)
class FontIdentity:
  """Which font set a FONTS dataset was rendered from: `count` fonts (F), and `digest`, a SHA-256
  (hex, first 16 digits) of their file names, families and styles in order."""
  count: int
  digest: str

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)


def font_identity(fonts: FontSet) -> FontIdentity:
  """The identity of a font set: the same on every machine and process with the same font files
  (file names, not folders, so installation paths do not enter it)."""
  lines = []
  for path in fonts.paths:
    family, style = load_font(path).getname()
    lines.append(f"{os.path.basename(path)}\t{family or ''}\t{style or ''}")
  digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
  return FontIdentity(len(fonts.paths), digest)


def layout(num: int, num_fonts: int) -> tuple[np.ndarray, np.ndarray]:
  """(font, class) of rows 0..num-1: int32 [num] each, font (i // 10) % num_fonts, class i % 10."""
  i = np.arange(num)
  return ((i // len(LETTERS)) % num_fonts).astype(np.int32), (i % len(LETTERS)).astype(np.int32)


def stratified_rows(num_rows: int, num_fonts: int, num: int, seed: int) -> np.ndarray:
  """num rows of a split of num_rows rows (`layout`) spread over all its fonts, classes balanced.

  The fonts with a full block of ten letters in the split are put in a random order (numpy
  stream `seed`); the t-th chosen row shows font order[t % fonts] and class 10 t // num, so
  every font gets num // fonts or one more rows and every class num // 10 or one more. A
  repeated (font, class) pair takes that font's next block (row 10 (font + k F) + class).
  Returns sorted int64 [num] (every row when num == num_rows); raises ValueError when the split
  holds too few rows.
  """
  if num == num_rows:
    return np.arange(num_rows)
  fonts = min(num_fonts, num_rows // len(LETTERS))
  if num < 0 or fonts < 1:
    raise ValueError(f"need num >= 0 and a split with a full block of {len(LETTERS)} rows, got "
                     f"num={num}, num_rows={num_rows}")
  order = np.random.default_rng(seed).permutation(fonts)
  t = np.arange(num)
  font, label = order[t % fonts], t * len(LETTERS) // max(num, 1)
  pair = font * len(LETTERS) + label
  by_pair = np.argsort(pair, kind="stable")
  _, starts, counts = np.unique(pair[by_pair], return_index=True, return_counts=True)
  repeat = np.empty(num, np.int64)
  repeat[by_pair] = np.arange(num) - np.repeat(starts, counts)  # rank of t among its pair's
  rows = len(LETTERS) * (font + repeat * num_fonts) + label
  if num and rows.max() >= num_rows:
    raise ValueError(f"{num} rows spread over {fonts} fonts need a split of more than "
                     f"{rows.max()} rows, got {num_rows}; attack fewer test images")
  return np.sort(rows)


def draw_theta(seed: int, stream: int, num: int, theta_range: geometry.ThetaRange) -> np.ndarray:
  """float32 [num, 6] codes uniform in the box; row i depends on (seed, stream, i) only."""
  rng = np.random.default_rng([seed, stream])
  lo, hi = theta_range.box
  return rng.uniform(lo, hi, size=(num, 6)).astype(np.float32)


def shared_rows(a: np.ndarray, b: np.ndarray) -> int:
  """Number of distinct rows of a [N, D] that also occur in b [M, D] (exact bytes)."""
  def rows(x):
    x = np.ascontiguousarray(x)
    return x.view(np.dtype((np.void, x.dtype.itemsize * x.shape[1]))).ravel()
  return len(np.intersect1d(rows(a), rows(b)))


_render = jax.jit(geometry.transform)


def render(prototypes: np.ndarray, theta: np.ndarray) -> np.ndarray:
  """Images float32 [B, H, W, 1] of prototypes [B, H, W, 1] under codes theta [B, 6].

  Rendered in chunks of RENDER_CHUNK, the last one padded to a power of two so that few shapes
  compile.
  """
  chunks = []
  for start in range(0, len(theta), RENDER_CHUNK):
    p, t = prototypes[start:start + RENDER_CHUNK], theta[start:start + RENDER_CHUNK]
    padded = min(RENDER_CHUNK, max(16, 1 << (len(t) - 1).bit_length()))
    pad = ((0, padded - len(t)),)
    out = _render(np.pad(p, pad + ((0, 0),) * 3), np.pad(t, pad + ((0, 0),)))
    chunks.append(np.asarray(out)[:len(t)])
  return np.concatenate(chunks) if chunks else np.zeros((0, *prototypes.shape[1:]), np.float32)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class RenderedImages:
  """A lazily rendered float32 [N, 28, 28, 1] image array of FONTS.

  Row i is transform(prototypes[font[i], label[i]], theta[i]). Indexing with integers or integer
  arrays renders those rows; slicing returns another lazy view; np.asarray renders all rows.
  prototypes: float32 [F, 10, 28, 28]; font, label: int32 [N]; theta: float32 [N, 6];
  theta_range: the box theta was drawn from (the on-manifold attack's box).
  """
  prototypes: np.ndarray
  font: np.ndarray
  label: np.ndarray
  theta: np.ndarray
  theta_range: geometry.ThetaRange

  dtype = np.dtype(np.float32)
  ndim = 4

  @property
  def shape(self) -> tuple[int, int, int, int]:
    return (len(self.theta), *self.prototypes.shape[2:], 1)

  @property
  def size(self) -> int:
    return int(np.prod(self.shape))

  def __len__(self) -> int:
    return len(self.theta)

  def prototypes_at(self, index) -> np.ndarray:
    """The untransformed prototypes of rows `index` (int array [B]): float32 [B, 28, 28, 1]."""
    return self.prototypes[self.font[index], self.label[index]][..., None]

  def __getitem__(self, index):
    if isinstance(index, slice):
      return dataclasses.replace(self, font=self.font[index], label=self.label[index],
                                 theta=self.theta[index])
    index = np.asarray(index)
    if index.dtype.kind not in "iu":
      raise TypeError(f"RenderedImages takes a slice or integer indices, got {index.dtype}.")
    rows = index.reshape(-1)
    images = render(self.prototypes_at(rows), self.theta[rows])
    return images.reshape(*index.shape, *images.shape[1:])

  def __repr__(self) -> str:
    return (f"RenderedImages(shape={self.shape}, fonts={len(self.prototypes)}, "
            f"theta_range={self.theta_range})")

  def __array__(self, dtype=None, copy=None):
    images = self[np.arange(len(self))]
    return images if dtype is None else images.astype(dtype)


def rendered_split(fonts: FontSet, num: int, seed: int, stream: int,
                   theta_range: geometry.ThetaRange) -> RenderedImages:
  """One split of `num` lazily rendered rows (module docstring's layout)."""
  font, label = layout(num, len(fonts.paths))
  return RenderedImages(fonts.prototypes, font, label, draw_theta(seed, stream, num, theta_range),
                        theta_range)


def load_fonts(num_train: int = 960_000, num_test: int = 160_000, seed: int = 0,
               difficulty: str = "hard", max_fonts: int | None = None,
               font_paths: Iterable[str] | None = None) -> Dataset:
  """The FONTS Dataset with lazily rendered x_train, x_test (`RenderedImages`), 10 classes A-J.

  difficulty: "easy" | "moderate" | "hard" (docs/protocol.md#fonts, geometry.FONTS_RANGES).
  max_fonts: use only the first fonts of `find_fonts` (fast tests); font_paths: the candidate
  font files instead of the machine's.
  """
  if difficulty not in geometry.FONTS_RANGES:
    raise ValueError(f"difficulty must be one of {sorted(geometry.FONTS_RANGES)}, "
                     f"got {difficulty!r}.")
  if num_train < 1 or num_test < 1 or (max_fonts is not None and max_fonts < 1):
    raise ValueError(f"num_train, num_test and max_fonts must be positive, got {num_train}, "
                     f"{num_test}, {max_fonts}.")
  fonts = find_fonts(max_fonts, font_paths)
  theta_range = geometry.FONTS_RANGES[difficulty]
  train = rendered_split(fonts, num_train, seed, TRAIN_STREAM, theta_range)
  test = rendered_split(fonts, num_test, seed, TEST_STREAM, theta_range)
  if shared_rows(train.theta, test.theta):
    raise RuntimeError(f"FONTS seed {seed}: a test theta equals a training theta.")
  return Dataset(name="fonts", x_train=train, y_train=train.label, x_test=test,
                 y_test=test.label, num_classes=len(LETTERS))
