"""FONTS: letters A-J rendered from the machine's fonts under random affine transforms, the one
dataset whose manifold is known exactly (PAPER.md). `make fonts` installs ~1000 Debian fonts.

Usage: --config=configs/fonts.py[:paper|quick|smoke].
"""
from dmr import config


def get_config(preset: str = "paper"):
  preset = preset or "paper"
  c = config.base("fonts", preset)
  c.data.num_train = 960_000
  c.data.num_test = 160_000
  c.data.seed = 0
  c.data.difficulty = "hard"  # easy | moderate | hard (PAPER.md's theta ranges)
  c.data.max_fonts = config.placeholder(int)  # None: every usable font of the machine.
  if preset == "quick":
    c.data.num_train, c.data.num_test = 20_000, 2_000
  elif preset == "smoke":
    c.data.num_train, c.data.num_test, c.data.max_fonts = 1_000, 200, 10
  return c
